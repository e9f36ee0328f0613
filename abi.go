package luo

// The Linux 7.2 uAPI of include/uapi/linux/liveupdate.h, kept under the
// kernel's names. All commands are _IO(LIVEUPDATE_IOCTL_TYPE, nr): no size or
// direction bits. abi_test.go pins every number, size and offset.
const (
	LIVEUPDATE_IOCTL_TYPE          = 0xBA
	LIVEUPDATE_SESSION_NAME_LENGTH = 64 // including the terminating NUL

	LIVEUPDATE_CMD_BASE                = 0x00
	LIVEUPDATE_CMD_CREATE_SESSION      = LIVEUPDATE_CMD_BASE
	LIVEUPDATE_CMD_RETRIEVE_SESSION    = 0x01
	LIVEUPDATE_CMD_SESSION_BASE        = 0x40
	LIVEUPDATE_CMD_SESSION_PRESERVE_FD = LIVEUPDATE_CMD_SESSION_BASE
	LIVEUPDATE_CMD_SESSION_RETRIEVE_FD = 0x41
	LIVEUPDATE_CMD_SESSION_FINISH      = 0x42
	LIVEUPDATE_CMD_SESSION_GET_NAME    = 0x43

	// On the /dev/liveupdate fd.
	LIVEUPDATE_IOCTL_CREATE_SESSION   = LIVEUPDATE_IOCTL_TYPE<<8 | LIVEUPDATE_CMD_CREATE_SESSION   // 0xBA00
	LIVEUPDATE_IOCTL_RETRIEVE_SESSION = LIVEUPDATE_IOCTL_TYPE<<8 | LIVEUPDATE_CMD_RETRIEVE_SESSION // 0xBA01

	// On a session fd.
	LIVEUPDATE_SESSION_PRESERVE_FD = LIVEUPDATE_IOCTL_TYPE<<8 | LIVEUPDATE_CMD_SESSION_PRESERVE_FD // 0xBA40
	LIVEUPDATE_SESSION_RETRIEVE_FD = LIVEUPDATE_IOCTL_TYPE<<8 | LIVEUPDATE_CMD_SESSION_RETRIEVE_FD // 0xBA41
	LIVEUPDATE_SESSION_FINISH      = LIVEUPDATE_IOCTL_TYPE<<8 | LIVEUPDATE_CMD_SESSION_FINISH      // 0xBA42
	LIVEUPDATE_SESSION_GET_NAME    = LIVEUPDATE_IOCTL_TYPE<<8 | LIVEUPDATE_CMD_SESSION_GET_NAME    // 0xBA43
)

// LiveupdateIoctlCreateSession is struct liveupdate_ioctl_create_session
// (72 bytes): Size and Name in, Fd out.
type LiveupdateIoctlCreateSession struct {
	Size uint32
	Fd   int32
	Name [LIVEUPDATE_SESSION_NAME_LENGTH]byte
}

// LiveupdateIoctlRetrieveSession is struct liveupdate_ioctl_retrieve_session
// (72 bytes): Size and Name in, Fd out.
type LiveupdateIoctlRetrieveSession struct {
	Size uint32
	Fd   int32
	Name [LIVEUPDATE_SESSION_NAME_LENGTH]byte
}

// LiveupdateSessionPreserveFd is struct liveupdate_session_preserve_fd
// (16 bytes, Token is an __aligned_u64): all fields in.
type LiveupdateSessionPreserveFd struct {
	Size  uint32
	Fd    int32
	Token uint64
}

// LiveupdateSessionRetrieveFd is struct liveupdate_session_retrieve_fd
// (16 bytes): Size and Token in, Fd out.
type LiveupdateSessionRetrieveFd struct {
	Size  uint32
	Fd    int32
	Token uint64
}

// LiveupdateSessionFinish is struct liveupdate_session_finish (8 bytes).
// Reserved must be zero.
type LiveupdateSessionFinish struct {
	Size     uint32
	Reserved uint32
}

// LiveupdateSessionGetName is struct liveupdate_session_get_name (72 bytes):
// Size in, Reserved zero, Name out (NUL-terminated).
type LiveupdateSessionGetName struct {
	Size     uint32
	Reserved uint32
	Name     [LIVEUPDATE_SESSION_NAME_LENGTH]byte
}
