package control

// IDL is a parsed interface description, for the tests of package
// control_test that check JSON against it.
type IDL struct{ iface *idlInterface }

// ParseIDL parses an interface description in the Varlink syntax.
func ParseIDL(text string) (*IDL, error) {
	iface, err := parseIDL(text)
	if err != nil {
		return nil, err
	}
	return &IDL{iface}, nil
}

// ParseManagerIDL parses the description of io.luo.Manager that luod
// serves.
func ParseManagerIDL() (*IDL, error) { return ParseIDL(managerIDL) }

// CheckReply returns where data, one JSON value, does not match the reply
// of method (see checkJSON): nothing when it matches.
func (i *IDL) CheckReply(method string, data []byte) []string {
	return i.iface.checkReply(method, data)
}
