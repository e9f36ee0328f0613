package control

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// This file checks the interface descriptions against the Varlink grammar
// (https://varlink.org/Interface-Definition) with a small parser, and
// io.luo.Manager's against the Go types of api.go.

type idlType struct {
	optional bool
	kind     string // bool, int, float, string, object, array, dict, named, struct, enum
	elem     *idlType
	name     string     // named
	fields   []idlField // struct
	values   []string   // enum
}

type idlField struct {
	name string
	typ  *idlType
}

type idlMethod struct{ in, out *idlType }

type idlInterface struct {
	name    string
	types   map[string]*idlType
	methods map[string]idlMethod
	errors  map[string]*idlType
}

var (
	idlInterfaceName = regexp.MustCompile(`^[A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+$`)
	idlMemberName    = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	idlFieldName     = regexp.MustCompile(`^[A-Za-z](_?[A-Za-z0-9])*$`)
)

type idlParser struct {
	s   string
	pos int
}

func parseIDL(s string) (_ *idlInterface, err error) {
	p := &idlParser{s: s}
	defer func() {
		if v := recover(); v != nil {
			line := strings.Count(s[:min(p.pos, len(s))], "\n") + 1
			err = fmt.Errorf("line %d: %v", line, v)
		}
	}()
	p.skip()
	p.keyword("interface")
	p.skip()
	iface := &idlInterface{
		name:    p.word(),
		types:   map[string]*idlType{},
		methods: map[string]idlMethod{},
		errors:  map[string]*idlType{},
	}
	if !idlInterfaceName.MatchString(iface.name) {
		panic(fmt.Sprintf("bad interface name %q", iface.name))
	}
	seen := map[string]bool{}
	for p.skip(); p.pos < len(p.s); p.skip() {
		kw := p.word()
		p.skip()
		name := p.word()
		if !idlMemberName.MatchString(name) {
			panic(fmt.Sprintf("bad member name %q", name))
		}
		if seen[name] {
			panic(fmt.Sprintf("%s defined twice", name))
		}
		seen[name] = true
		p.skip()
		switch kw {
		case "type":
			iface.types[name] = p.structOrEnum()
		case "method":
			in := p.structOrEnum()
			p.skip()
			p.keyword("->")
			p.skip()
			out := p.structOrEnum()
			if in.kind != "struct" || out.kind != "struct" {
				panic("method parameters must be structs")
			}
			iface.methods[name] = idlMethod{in, out}
		case "error":
			t := p.structOrEnum()
			if t.kind != "struct" {
				panic("error parameters must be a struct")
			}
			iface.errors[name] = t
		default:
			panic(fmt.Sprintf("unknown keyword %q", kw))
		}
	}
	// Every named type is defined.
	var check func(t *idlType)
	check = func(t *idlType) {
		switch t.kind {
		case "named":
			if iface.types[t.name] == nil {
				panic(fmt.Sprintf("undefined type %s", t.name))
			}
		case "array", "dict":
			check(t.elem)
		case "struct":
			for _, f := range t.fields {
				check(f.typ)
			}
		}
	}
	for _, t := range iface.types {
		check(t)
	}
	for _, m := range iface.methods {
		check(m.in)
		check(m.out)
	}
	for _, t := range iface.errors {
		check(t)
	}
	return iface, nil
}

// skip skips white space and comments.
func (p *idlParser) skip() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *idlParser) word() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	if p.pos == start {
		panic(fmt.Sprintf("expected a name at %q", p.rest()))
	}
	return p.s[start:p.pos]
}

func (p *idlParser) rest() string {
	r := p.s[p.pos:]
	if len(r) > 20 {
		r = r[:20]
	}
	return r
}

func (p *idlParser) keyword(kw string) {
	if !strings.HasPrefix(p.s[p.pos:], kw) {
		panic(fmt.Sprintf("expected %q at %q", kw, p.rest()))
	}
	p.pos += len(kw)
}

func (p *idlParser) peek(s string) bool { return strings.HasPrefix(p.s[p.pos:], s) }

// structOrEnum parses "(" ... ")".
func (p *idlParser) structOrEnum() *idlType {
	p.keyword("(")
	p.skip()
	if p.peek(")") {
		p.pos++
		return &idlType{kind: "struct"}
	}
	first := p.word()
	p.skip()
	if !p.peek(":") {
		t := &idlType{kind: "enum", values: []string{first}}
		for p.skip(); !p.peek(")"); p.skip() {
			p.keyword(",")
			p.skip()
			t.values = append(t.values, p.word())
		}
		p.pos++
		return t
	}
	t := &idlType{kind: "struct"}
	name := first
	for {
		if !idlFieldName.MatchString(name) {
			panic(fmt.Sprintf("bad field name %q", name))
		}
		for _, f := range t.fields {
			if f.name == name {
				panic(fmt.Sprintf("field %q twice", name))
			}
		}
		p.skip()
		p.keyword(":")
		p.skip()
		t.fields = append(t.fields, idlField{name, p.typ()})
		p.skip()
		if p.peek(")") {
			p.pos++
			return t
		}
		p.keyword(",")
		p.skip()
		name = p.word()
	}
}

func (p *idlParser) typ() *idlType {
	optional := false
	if p.peek("?") {
		optional = true
		p.pos++
	}
	var t *idlType
	switch {
	case p.peek("?"):
		panic("?? is not a type")
	case p.peek("[]"):
		p.pos += 2
		t = &idlType{kind: "array", elem: p.typ()}
	case p.peek("[string]"):
		p.pos += len("[string]")
		t = &idlType{kind: "dict", elem: p.typ()}
	case p.peek("("):
		t = p.structOrEnum()
	default:
		switch w := p.word(); w {
		case "bool", "int", "float", "string", "object":
			t = &idlType{kind: w}
		default:
			if !idlMemberName.MatchString(w) {
				panic(fmt.Sprintf("bad type name %q", w))
			}
			t = &idlType{kind: "named", name: w}
		}
	}
	if t.elem != nil && t.elem.optional {
		panic("optional array elements are not used here")
	}
	t.optional = optional
	return t
}

func TestIDLSyntax(t *testing.T) {
	t.Parallel()
	for name, text := range map[string]string{Interface: managerIDL, ServiceInterface: serviceIDL} {
		iface, err := parseIDL(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if iface.name != name {
			t.Errorf("interface name %q, want %q", iface.name, name)
		}
	}
	// The parser rejects what the grammar does.
	for _, bad := range []string{
		"interface a",
		"interface a.b\nmethod F(a: int,) -> ()",
		"interface a.b\nmethod F(a: int) -> ()\nmethod F() -> ()",
		"interface a.b\nmethod f() -> ()",
		"interface a.b\ntype T (a__b: int)",
		"interface a.b\ntype T (a: U)",
		"interface a.b\ntype T (a: ??int)",
		"interface a.b\nerror E",
	} {
		if _, err := parseIDL(bad); err == nil {
			t.Errorf("parseIDL(%q) accepted", bad)
		}
	}
}

// methodTypes are the Go types of each method's parameters and reply; nil
// is no fields.
var methodTypes = map[string][2]any{
	MethodGetManager:      {nil, Manager{}},
	MethodListUnits:       {nil, Units{}},
	MethodGetUnit:         {UnitName{}, UnitReply{}},
	MethodStartUnit:       {UnitName{}, UnitReply{}},
	MethodStopUnit:        {UnitName{}, UnitReply{}},
	MethodRestartUnit:     {UnitName{}, UnitReply{}},
	MethodCleanUnit:       {CleanParams{}, UnitReply{}},
	MethodResetFailed:     {ResetFailedParams{}, Units{}},
	MethodDumpFDStore:     {UnitName{}, FDStore{}},
	MethodReload:          {nil, ReloadReply{}},
	MethodReexec:          {nil, nil},
	MethodPowerOff:        {nil, nil},
	MethodReboot:          {nil, nil},
	MethodListSessions:    {nil, Sessions{}},
	MethodPlanUpdate:      {UpdateParams{}, Plan{}},
	MethodRunUpdate:       {UpdateParams{}, Progress{}},
	MethodGetUpdateReport: {ReportParams{}, Report{}},
	MethodStageUpdate:     {StageParams{}, Staged{}},
	MethodGetStagedUpdate: {nil, Staged{}},
	MethodUnstageUpdate:   {nil, nil},
	MethodGetLogs:         {LogsParams{}, LogLines{}},
	MethodGetFleet:        {nil, Fleet{}},
	MethodReleaseFleet:    {FleetHost{}, FleetReleased{}},
}

type messageParams struct {
	Message string `json:"message,omitempty"`
}

// errorTypes are the Go types of each error's parameters.
var errorTypes = map[string]any{
	ErrNoSuchUnit: struct {
		Name string `json:"name"`
	}{},
	ErrUnitBusy: struct {
		Name    string `json:"name,omitempty"`
		Message string `json:"message,omitempty"`
	}{},
	ErrJobFailed:        UnitReply{},
	ErrUpdateFailed:     UpdateFailure{},
	ErrUpdateInProgress: messageParams{},
	ErrNotSupported:     messageParams{},
	ErrNoReport:         messageParams{},
	ErrNotStaged:        messageParams{},
	ErrShuttingDown:     messageParams{},
	ErrFleetUnavailable: messageParams{},
	errProtocol: struct {
		Message string `json:"message"`
	}{},
	errInternal: struct {
		Message string `json:"message"`
	}{},
}

func TestIDLMatchesAPI(t *testing.T) {
	t.Parallel()
	iface, err := parseIDL(managerIDL)
	if err != nil {
		t.Fatal(err)
	}
	keys := func(m any) []string {
		var ks []string
		for _, k := range reflect.ValueOf(m).MapKeys() {
			ks = append(ks, k.String())
		}
		sort.Strings(ks)
		return ks
	}
	if got, want := keys(iface.methods), slices.Sorted(slices.Values(managerMethods)); !slices.Equal(got, want) {
		t.Errorf("IDL methods %v, want %v", got, want)
	}
	if got, want := keys(iface.methods), keys(methodTypes); !slices.Equal(got, want) {
		t.Errorf("IDL methods %v, methodTypes %v", got, want)
	}
	if got, want := keys(iface.errors), keys(errorTypes); !slices.Equal(got, want) {
		t.Errorf("IDL errors %v, want %v", got, want)
	}
	c := &idlChecker{t: t, iface: iface, done: map[string]bool{}}
	for name, m := range iface.methods {
		c.structType(name+" parameters", m.in, methodTypes[name][0])
		c.structType(name+" reply", m.out, methodTypes[name][1])
	}
	for name, e := range iface.errors {
		c.structType("error "+name, e, errorTypes[name])
	}
	for name := range iface.types {
		if !c.done[name] {
			t.Errorf("type %s is not used by any method or error", name)
		}
	}
}

type idlChecker struct {
	t     *testing.T
	iface *idlInterface
	done  map[string]bool
}

// structType checks an IDL struct against the JSON encoding of a Go struct
// (nil: no fields).
func (c *idlChecker) structType(where string, it *idlType, v any) {
	var gt reflect.Type
	if v != nil {
		gt = reflect.TypeOf(v)
	}
	c.fields(where, it, gt)
}

func (c *idlChecker) fields(where string, it *idlType, gt reflect.Type) {
	got := map[string]*idlType{}
	for _, f := range it.fields {
		got[f.name] = f.typ
	}
	if gt != nil {
		for i := range gt.NumField() {
			f := gt.Field(i)
			name, required := jsonField(f)
			if name == "" {
				continue
			}
			ft, ok := got[name]
			if !ok {
				c.t.Errorf("%s: field %q missing in the IDL", where, name)
				continue
			}
			delete(got, name)
			if ft.optional == required {
				c.t.Errorf("%s: field %q: IDL optional=%v, Go encoding makes it optional=%v", where, name, ft.optional, !required)
			}
			c.typ(where+"."+name, ft, f.Type)
		}
	}
	for name := range got {
		c.t.Errorf("%s: IDL field %q not in the Go type", where, name)
	}
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
)

// typ checks an IDL type (optionality aside) against a Go type.
func (c *idlChecker) typ(where string, it *idlType, gt reflect.Type) {
	want := ""
	switch {
	case gt == timeType:
		want = "string"
	case gt == durationType:
		want = "int"
	default:
		switch gt.Kind() {
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "bool"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "int"
		case reflect.Float32, reflect.Float64:
			want = "float"
		case reflect.Pointer:
			c.typ(where, it, gt.Elem())
			return
		case reflect.Slice, reflect.Array:
			if it.kind != "array" {
				c.t.Errorf("%s: IDL %s, want an array", where, it.kind)
				return
			}
			c.typ(where+"[]", it.elem, gt.Elem())
			return
		case reflect.Struct:
			if it.kind != "named" || it.name != gt.Name() {
				c.t.Errorf("%s: IDL %s %s, want type %s", where, it.kind, it.name, gt.Name())
				return
			}
			if !c.done[it.name] {
				c.done[it.name] = true
				c.fields("type "+it.name, c.iface.types[it.name], gt)
			}
			return
		default:
			want = "object"
		}
	}
	if it.kind != want {
		c.t.Errorf("%s: IDL %s, want %s", where, it.kind, want)
	}
}
