// Package quicroute lets the processes of a restart share one UDP socket
// for QUIC. Every process reads the socket, so each receives packets of
// the others' connections. The connection IDs a process issues carry its
// generation, encrypted (AES) under a key derived from the secret the
// processes share; a packet is routed by the ID it is sent to:
//
//   - to an ID of this process: handed to its QUIC stack;
//   - to an ID of another generation: forwarded to that process over a
//     unix datagram socket of its own (Linux's abstract namespace, named
//     after the family, the port and the generation), with the client's
//     address and a proof of the shared secret;
//   - to an ID no process issued (a client's first packets): a new
//     connection, served here unless this process drains, in which case
//     it is forwarded to the newest generation.
//
// Packets that are malformed, that name an ID of no generation, that
// arrive on the forward socket without the proof, or that find no route
// are dropped and counted, never handed to the wrong connection.
package quicroute

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// CIDLen is the length of the connection IDs a router issues: one AES
// block.
const CIDLen = 16

// maxPacket is the largest datagram kept whole; QUIC stacks send at most
// about 1,500 bytes.
const maxPacket = 2048

// probeAhead is how many generations past its own a draining process
// tries when it looks for its successor (failed restarts use numbers up).
const probeAhead = 64

// Keys are the secrets the processes of a family derive from theirs.
type Keys struct {
	CID          [16]byte // the AES key of connection IDs
	Forward      [16]byte // proof carried by forwarded datagrams
	StatelessRst [32]byte // QUIC stateless reset key
	Token        [32]byte // QUIC address validation token key
	Ticket       [32]byte // TLS session ticket key (resumption and 0-RTT across processes)
	Name         string   // part of the forward sockets' names
}

// DeriveKeys derives the keys of family.
func DeriveKeys(family []byte) Keys {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, family)
		m.Write([]byte("handoff quic " + label))
		return m.Sum(nil)
	}
	var k Keys
	copy(k.CID[:], derive("cid"))
	copy(k.Forward[:], derive("forward"))
	copy(k.StatelessRst[:], derive("stateless reset"))
	copy(k.Token[:], derive("token"))
	copy(k.Ticket[:], derive("ticket"))
	k.Name = hex.EncodeToString(derive("name")[:8])
	return k
}

// Stats counts what a router did with the datagrams it saw.
type Stats struct {
	Local     int64 // handed to this process's QUIC stack, from the socket
	Received  int64 // handed to it after another process forwarded them
	Forwarded int64 // sent on to another process
	Unknown   int64 // dropped: sent to an ID of no generation
	Malformed int64 // dropped: too short to carry a connection ID, or a bad forward
	Foreign   int64 // dropped: on the forward socket without the proof
	NoRoute   int64 // dropped: the process they belong to is gone
	Overflow  int64 // dropped: this process's queue was full
}

type counters struct {
	local, received, forwarded, unknown, malformed, foreign, noRoute, overflow atomic.Int64
}

type packet struct {
	buf  *[maxPacket]byte
	n    int
	addr net.Addr
}

var bufs = sync.Pool{New: func() any { return new([maxPacket]byte) }}

// Router is the net.PacketConn a QUIC stack reads and writes (and its
// connection ID generator).
type Router struct {
	pc    net.PacketConn // the shared socket
	block cipher.Block
	keys  Keys
	tag   uint16   // the generation, as IDs and socket names carry it
	base  string   // forward socket name without the tag
	addrs sync.Map // tag -> *net.UnixAddr
	fwd   *net.UnixConn
	in    chan packet
	c     counters
	warn  func(string, error)

	// newMu orders the local delivery of new connections' packets with
	// Drain: each is queued before the drain begins or not at all, so a
	// marker queued after Drain comes behind every one of them.
	newMu     sync.Mutex
	draining  atomic.Bool
	successor atomic.Int64 // tag+1 of the newest generation found, or 0

	closeOnce sync.Once
	closed    chan struct{}
	readers   sync.WaitGroup

	dlMu      sync.Mutex
	dl        time.Time
	dlChanged chan struct{}
}

// New routes the packets of pc for the process of generation gen of the
// family whose keys are k. Generations are told apart modulo 65,536: a
// process 65,536 restarts older than another would be mistaken for it.
// warn reports trouble that is not a packet's (the forward socket, say).
// Close ends it; pc stays open.
func New(pc net.PacketConn, k Keys, gen int, warn func(string, error)) (*Router, error) {
	block, err := newBlock(k)
	if err != nil {
		return nil, err
	}
	port := 0
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		port = a.Port
	}
	r := &Router{
		pc: pc, block: block, keys: k, tag: uint16(gen),
		base:      "@handoff-quic-" + k.Name + "-" + strconv.Itoa(port) + "-",
		in:        make(chan packet, 1024),
		warn:      warn,
		closed:    make(chan struct{}),
		dlChanged: make(chan struct{}),
	}
	if runtime.GOOS == "linux" {
		r.fwd, err = net.ListenUnixgram("unixgram", r.addrOf(r.tag))
		if err != nil {
			return nil, fmt.Errorf("quicroute: forward socket: %w", err)
		}
		r.readers.Add(1)
		go r.readForwarded()
	}
	r.readers.Add(1)
	go r.readSocket()
	return r, nil
}

func newBlock(k Keys) (cipher.Block, error) { return aes.NewCipher(k.CID[:]) }

// Stats returns the counters.
func (r *Router) Stats() Stats {
	return Stats{
		Local: r.c.local.Load(), Received: r.c.received.Load(), Forwarded: r.c.forwarded.Load(),
		Unknown: r.c.unknown.Load(), Malformed: r.c.malformed.Load(), Foreign: r.c.foreign.Load(),
		NoRoute: r.c.noRoute.Load(), Overflow: r.c.overflow.Load(),
	}
}

// Drain sends packets of new connections to the newest generation from
// now on.
func (r *Router) Drain() {
	r.newMu.Lock()
	r.draining.Store(true)
	r.newMu.Unlock()
}

// markerAddr is the address a marker comes from: none.
type markerAddr struct{}

func (markerAddr) Network() string { return "quicroute" }
func (markerAddr) String() string  { return "drain marker" }

// IsMarker reports whether a is the address of Mark's packets.
func IsMarker(a net.Addr) bool {
	_, ok := a.(markerAddr)
	return ok
}

// Mark queues a marker for ReadFrom, once Drain was called: a QUIC v1
// Initial packet (of no connection: nothing follows it) from an address
// IsMarker knows; what is written to that address goes nowhere. Every
// packet of a new connection this process was handed comes before it, so
// a QUIC stack that takes its packets in order has begun each of those
// connections by the time it sees the marker (quic-go asks its
// ConnContext about the marker last). Mark waits while the queue is full,
// until the router is closed.
func (r *Router) Mark() {
	buf := bufs.Get().(*[maxPacket]byte)
	n := marker(buf[:])
	select {
	case r.in <- packet{buf: buf, n: n, addr: markerAddr{}}:
	case <-r.closed:
		bufs.Put(buf)
	}
}

// marker writes a marker into b (at least 1,200 bytes, the least a
// client's Initial may be) and returns its length: long header, Initial,
// version 1, a random 8-byte destination ID, no source ID, no token, the
// rest of the datagram as its payload (zeros).
func marker(b []byte) int {
	const size = 1200
	clear(b[:size])
	b[0] = 0xc0 // long header, fixed bit, Initial, 1-byte packet number
	binary.BigEndian.PutUint32(b[1:5], 1)
	b[5] = 8
	rand.Read(b[6:14])
	b[14] = 0                                              // source ID length
	b[15] = 0                                              // token length
	binary.BigEndian.PutUint16(b[16:18], 0x4000|(size-18)) // length, a 2-byte varint
	return size
}

// GenerateConnectionID issues an ID that names this generation.
func (r *Router) GenerateConnectionID() ([]byte, error) {
	var plain, id [CIDLen]byte
	binary.BigEndian.PutUint16(plain[0:2], r.tag)
	if _, err := rand.Read(plain[2:12]); err != nil {
		return nil, err
	}
	// plain[12:16] stays zero: the check that an ID is one of ours.
	r.block.Encrypt(id[:], plain[:])
	return id[:], nil
}

// ConnectionIDLen is CIDLen.
func (r *Router) ConnectionIDLen() int { return CIDLen }

// generationOf returns the generation (tag) an ID names, if it is one of
// the family's.
func (r *Router) generationOf(id []byte, plain *[CIDLen]byte) (uint16, bool) {
	r.block.Decrypt(plain[:], id)
	if binary.BigEndian.Uint32(plain[12:16]) != 0 {
		return 0, false
	}
	return binary.BigEndian.Uint16(plain[0:2]), true
}

// addrOf is the forward socket of the generation tagged tag.
func (r *Router) addrOf(tag uint16) *net.UnixAddr {
	if a, ok := r.addrs.Load(tag); ok {
		return a.(*net.UnixAddr)
	}
	a := &net.UnixAddr{Name: r.base + strconv.Itoa(int(tag)), Net: "unixgram"}
	r.addrs.Store(tag, a)
	return a
}

// verdict is where a packet goes.
type verdict int

const (
	toGeneration verdict = iota // to the generation (tag) returned
	toNew                       // a new connection
	dropMalformed
	dropUnknown
)

// Route says where the datagram b goes: to a generation, or to whoever
// takes new connections.
// tmp is scratch space of the caller's.
func (r *Router) route(b []byte, tmp *[CIDLen]byte) (uint16, verdict) {
	if len(b) == 0 {
		return 0, dropMalformed
	}
	if b[0]&0x80 == 0 { // short header: the ID is one this family issued
		if len(b) < 1+CIDLen {
			return 0, dropMalformed
		}
		if g, ok := r.generationOf(b[1:1+CIDLen], tmp); ok {
			return g, toGeneration
		}
		return 0, dropUnknown
	}
	// Long header: flags, version (4), ID length, ID.
	if len(b) < 6 || len(b) < 6+int(b[5]) {
		return 0, dropMalformed
	}
	if int(b[5]) == CIDLen {
		if g, ok := r.generationOf(b[6:6+CIDLen], tmp); ok {
			return g, toGeneration
		}
	}
	return 0, toNew
}

// readSocket reads the shared socket until it is closed or the router is.
func (r *Router) readSocket() {
	defer r.readers.Done()
	var tmp [CIDLen]byte
	for {
		buf := bufs.Get().(*[maxPacket]byte)
		n, addr, err := r.pc.ReadFrom(buf[:])
		if err != nil {
			bufs.Put(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				select {
				case <-r.closed:
					return
				default:
				}
				// A drain's read deadline (meant for packet handlers
				// that stop): this one reads on.
				r.pc.SetReadDeadline(time.Time{})
				continue
			}
			r.Close()
			return
		}
		r.dispatch(packet{buf: buf, n: n, addr: addr}, &tmp)
	}
}

func (r *Router) dispatch(p packet, tmp *[CIDLen]byte) {
	g, v := r.route(p.buf[:p.n], tmp)
	switch v {
	case dropMalformed:
		r.c.malformed.Add(1)
		bufs.Put(p.buf)
		return
	case dropUnknown:
		r.c.unknown.Add(1)
		bufs.Put(p.buf)
		return
	case toNew:
		if !r.deliverNew(p, &r.c.local) {
			r.forwardNew(p)
		}
		return
	}
	if g == r.tag && !r.isClosed() {
		r.deliver(p, &r.c.local)
		return
	}
	if g == r.tag {
		r.c.noRoute.Add(1) // its connection is over
		bufs.Put(p.buf)
		return
	}
	r.forward(p, g)
}

func (r *Router) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// deliverNew queues p, a new connection's, for this process's QUIC stack
// unless it drains (or is closed), and reports whether it did.
func (r *Router) deliverNew(p packet, count *atomic.Int64) bool {
	r.newMu.Lock()
	defer r.newMu.Unlock()
	if r.draining.Load() || r.isClosed() {
		return false
	}
	r.deliver(p, count)
	return true
}

// deliver queues p for this process's QUIC stack.
func (r *Router) deliver(p packet, count *atomic.Int64) {
	// Counted before it is handed on, so that whoever reads the packet
	// sees it counted.
	count.Add(1)
	select {
	case r.in <- p:
	default:
		count.Add(-1)
		r.c.overflow.Add(1)
		bufs.Put(p.buf)
	}
}

// forwardNew sends a new connection's packet to the newest generation.
func (r *Router) forwardNew(p packet) {
	first := uint16(1)
	if s := r.successor.Load(); s != 0 {
		first = uint16(s-1) - r.tag
	}
	for d := first; d != 0 && d <= probeAhead; d++ {
		if g := r.tag + d; r.send(p, g) {
			r.successor.Store(int64(g) + 1)
			r.c.forwarded.Add(1)
			bufs.Put(p.buf)
			return
		}
	}
	r.c.noRoute.Add(1)
	bufs.Put(p.buf)
}

// forward sends p to generation g.
func (r *Router) forward(p packet, g uint16) {
	if r.send(p, g) {
		r.c.forwarded.Add(1)
	} else {
		r.c.noRoute.Add(1)
	}
	bufs.Put(p.buf)
}

// Forwarded datagrams: proof (16), address length (1: 4 or 16), address,
// port (2), packet.
const fwdHeader = 16 + 1 + 16 + 2

// send writes p to the forward socket of generation g and reports whether
// it went.
func (r *Router) send(p packet, g uint16) bool {
	if r.fwd == nil {
		return false
	}
	ua, ok := p.addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	ip := ua.IP.To4()
	if ip == nil {
		ip = ua.IP.To16()
	}
	var msg [fwdHeader + maxPacket]byte
	n := copy(msg[:], r.keys.Forward[:])
	msg[n] = byte(len(ip))
	n++
	n += copy(msg[n:], ip)
	binary.BigEndian.PutUint16(msg[n:], uint16(ua.Port))
	n += 2
	n += copy(msg[n:], p.buf[:p.n])
	_, err := r.fwd.WriteToUnix(msg[:n], r.addrOf(g))
	return err == nil
}

// readForwarded reads what other processes forward, until the router is
// closed.
func (r *Router) readForwarded() {
	defer r.readers.Done()
	var msg [fwdHeader + maxPacket]byte
	var tmp [CIDLen]byte
	for {
		n, err := r.fwd.Read(msg[:])
		if err != nil {
			if r.isClosed() {
				return
			}
			r.warn("reading forwarded packets", err)
			return
		}
		b := msg[:n]
		if n < 16 || subtle.ConstantTimeCompare(b[:16], r.keys.Forward[:]) != 1 {
			r.c.foreign.Add(1)
			continue
		}
		b = b[16:]
		if len(b) < 1 || (b[0] != 4 && b[0] != 16) || len(b) < 1+int(b[0])+2 {
			r.c.malformed.Add(1)
			continue
		}
		ipLen := int(b[0])
		addr := &net.UDPAddr{IP: append(net.IP(nil), b[1:1+ipLen]...), Port: int(binary.BigEndian.Uint16(b[1+ipLen:]))}
		payload := b[1+ipLen+2:]
		if len(payload) == 0 || len(payload) > maxPacket {
			r.c.malformed.Add(1)
			continue
		}
		buf := bufs.Get().(*[maxPacket]byte)
		p := packet{buf: buf, n: copy(buf[:], payload), addr: addr}
		g, v := r.route(payload, &tmp)
		switch {
		case v == toGeneration && g == r.tag:
			r.deliver(p, &r.c.received)
		case v == toNew:
			if !r.deliverNew(p, &r.c.received) {
				r.forwardNew(p) // this process drains too: on to the newest
			}
		default:
			r.c.noRoute.Add(1) // not ours: never passed on twice
			bufs.Put(buf)
		}
	}
}

// ReadFrom returns the next packet for this process.
func (r *Router) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		r.dlMu.Lock()
		dl, changed := r.dl, r.dlChanged
		r.dlMu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		n, addr, err, again := r.next(b, timeout, changed)
		if timer != nil {
			timer.Stop()
		}
		if !again {
			return n, addr, err
		}
	}
}

// next waits for a packet, the router's end, the deadline, or a change of
// the deadline (again).
func (r *Router) next(b []byte, timeout <-chan time.Time, changed <-chan struct{}) (n int, addr net.Addr, err error, again bool) {
	select {
	case p := <-r.in:
		n := copy(b, p.buf[:p.n])
		bufs.Put(p.buf)
		return n, p.addr, nil, false
	case <-r.closed:
		return 0, nil, net.ErrClosed, false
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded, false
	case <-changed:
		return 0, nil, nil, true
	}
}

// WriteTo writes to the shared socket: any process may answer any client.
// What is written to a marker's address is dropped.
func (r *Router) WriteTo(b []byte, addr net.Addr) (int, error) {
	if IsMarker(addr) {
		return len(b), nil
	}
	return r.pc.WriteTo(b, addr)
}

// Close stops routing to this process: its reads end, and packets that
// arrive for it from now on are dropped, new connections forwarded. The
// shared socket stays open.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		if r.fwd != nil {
			r.fwd.Close()
		}
		r.pc.SetReadDeadline(time.Now()) // the socket reader returns
	})
	return nil
}

// Wait waits until the router's readers have returned (after Close, or
// once the shared socket is closed).
func (r *Router) Wait() { r.readers.Wait() }

// Done is closed once the router is closed (by Close, or because the
// shared socket was).
func (r *Router) Done() <-chan struct{} { return r.closed }

// LocalAddr is the shared socket's address.
func (r *Router) LocalAddr() net.Addr { return r.pc.LocalAddr() }

// SetDeadline sets the read deadline (writes have none).
func (r *Router) SetDeadline(t time.Time) error { return r.SetReadDeadline(t) }

// SetReadDeadline sets the deadline of ReadFrom.
func (r *Router) SetReadDeadline(t time.Time) error {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	r.dl = t
	close(r.dlChanged)
	r.dlChanged = make(chan struct{})
	return nil
}

// SetReadBuffer sets the shared socket's receive buffer (quic-go asks for
// one of several megabytes).
func (r *Router) SetReadBuffer(n int) error {
	if c, ok := r.pc.(interface{ SetReadBuffer(int) error }); ok {
		return c.SetReadBuffer(n)
	}
	return errors.New("quicroute: the socket has no receive buffer to set")
}

// SetWriteBuffer sets the shared socket's send buffer.
func (r *Router) SetWriteBuffer(n int) error {
	if c, ok := r.pc.(interface{ SetWriteBuffer(int) error }); ok {
		return c.SetWriteBuffer(n)
	}
	return errors.New("quicroute: the socket has no send buffer to set")
}

// SyscallConn gives the shared socket for options (buffer sizes, don't
// fragment); reads go through the router all the same.
func (r *Router) SyscallConn() (syscall.RawConn, error) {
	if c, ok := r.pc.(syscall.Conn); ok {
		return c.SyscallConn()
	}
	return nil, errors.New("quicroute: the socket has no system descriptor")
}

// SetWriteDeadline sets the shared socket's write deadline.
func (r *Router) SetWriteDeadline(t time.Time) error { return r.pc.SetWriteDeadline(t) }
