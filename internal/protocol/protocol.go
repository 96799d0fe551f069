// Package protocol is the handoff protocol between a process and the new
// copy of the program it starts, and the service-manager protocols it
// speaks: every environment variable either side reads or writes is named
// here, and only here.
//
// # Restart
//
// A parent passes its listening sockets to the child as descriptors 3, 4,
// 5, … and names them, in the same order, in ENDLESS_SOCKET_ORDER
// ("api,admin,echo" means fd 3 is "api", fd 4 "admin", fd 5 "echo"; the
// name is the one fvbock/endless used). The descriptor after the last
// socket is the write end of the readiness pipe: the child writes "ready"
// on it once every listener serves, and the parent then drains and exits.
// ENDLESS_PARENT_PID is the parent's pid: a process adopts the sockets
// only as that process's child, or once that process has died (killed
// during the handshake); variables copied into another process's
// environment are ignored. ENDLESS_GENERATION counts the restarts that led
// to the child. HANDOFF_FILES names other descriptors the program hands on
// (Server.PassFile): they follow the readiness pipe, in that order.
// HANDOFF_ACTIVATED names the listeners whose sockets came
// from socket activation: the child keeps them whatever address it
// declares, since the service manager decides those. A master sets
// HANDOFF_MASTER_PID in each worker it starts, so that the worker sends
// its restart requests to it. The child unsets every one of these before
// the program's code can start a process of its own.
//
// Parsing is strict, because a manifest that is silently misread hands a
// socket to the wrong listener: a name is 1 to 64 bytes of ASCII letters,
// digits, '.', '_' and '-'; the list is comma separated, with no empty
// item and no duplicate; at most MaxNames names.
//
// # Service managers
//
// Socket activation (sd_listen_fds(3)): LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES. Readiness and watchdog (sd_notify(3)): NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID.
package protocol

// Variables of the restart protocol.
const (
	EnvOrder      = "ENDLESS_SOCKET_ORDER"
	EnvParentPID  = "ENDLESS_PARENT_PID"
	EnvGeneration = "ENDLESS_GENERATION"
	EnvActivated  = "HANDOFF_ACTIVATED"
	EnvFiles      = "HANDOFF_FILES"
	EnvMasterPID  = "HANDOFF_MASTER_PID"
	// EnvFamily is a secret (hex) that every process of a server shares,
	// from the one started by hand on: its HTTP/3 processes recognise each
	// other's connection IDs and forwarded packets by it.
	EnvFamily = "HANDOFF_FAMILY"
)

// Variables of the service managers.
const (
	EnvListenPID     = "LISTEN_PID"
	EnvListenFDs     = "LISTEN_FDS"
	EnvListenFDNames = "LISTEN_FDNAMES"
	EnvNotifySocket  = "NOTIFY_SOCKET"
	EnvWatchdogUSec  = "WATCHDOG_USEC"
	EnvWatchdogPID   = "WATCHDOG_PID"
)

// ReadyMessage is what a child writes on the readiness pipe.
const ReadyMessage = "ready"

// Handoff lists the variables of the restart protocol, which a child
// unsets and a parent replaces.
var Handoff = []string{EnvOrder, EnvParentPID, EnvGeneration, EnvActivated, EnvFiles, EnvFamily}
