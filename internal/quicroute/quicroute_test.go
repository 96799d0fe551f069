package quicroute

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func family(t testing.TB) Keys {
	b := make([]byte, 32)
	rand.Read(b)
	return DeriveKeys(b)
}

func udp(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dupOf is another descriptor for the socket of c, as a restart's new
// process has.
func dupOf(t testing.TB, c *net.UDPConn) net.PacketConn {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dup, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dup.Close() })
	return dup
}

func newRouter(t testing.TB, pc net.PacketConn, k Keys, gen int) *Router {
	t.Helper()
	r, err := New(pc, k, gen, func(what string, err error) { t.Errorf("%s: %v", what, err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); pc.SetReadDeadline(time.Now()); r.Wait() })
	return r
}

// shortPacket is a 1-RTT packet to id.
func shortPacket(id []byte, payload string) []byte {
	return append(append([]byte{0x40}, id...), payload...)
}

// initial is a client's first packet, to an ID of its own choosing.
func initial(dcid []byte, payload string) []byte {
	b := []byte{0xc0, 0, 0, 0, 1, byte(len(dcid))}
	return append(append(b, dcid...), payload...)
}

func read(t *testing.T, r *Router) (string, net.Addr) {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, addr, err := r.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), addr
}

func TestRoute(t *testing.T) {
	k := family(t)
	r := &Router{keys: k, tag: 7}
	var err error
	if r.block, err = newBlock(k); err != nil {
		t.Fatal(err)
	}
	mine, _ := r.GenerateConnectionID()
	other := &Router{keys: k, tag: 8, block: r.block}
	theirs, _ := other.GenerateConnectionID()
	stranger := family(t)
	strange := &Router{keys: stranger, tag: 7}
	strange.block, _ = newBlock(stranger)
	foreign, _ := strange.GenerateConnectionID()
	random := make([]byte, 16)
	rand.Read(random)

	for _, tt := range []struct {
		name string
		b    []byte
		gen  uint16
		v    verdict
	}{
		{"short to mine", shortPacket(mine, "x"), 7, toGeneration},
		{"short to theirs", shortPacket(theirs, "x"), 8, toGeneration},
		{"short to another family's", shortPacket(foreign, "x"), 0, dropUnknown},
		{"short to a random ID", shortPacket(random, "x"), 0, dropUnknown},
		{"short, truncated", shortPacket(mine[:10], ""), 0, dropMalformed},
		{"initial to a client's ID", initial(random[:8], "x"), 0, toNew},
		{"initial to a 16-byte random ID", initial(random, "x"), 0, toNew},
		{"initial to theirs (a later client Initial)", initial(theirs, "x"), 8, toGeneration},
		{"long, ID longer than the datagram", []byte{0xc0, 0, 0, 0, 1, 20, 1, 2}, 0, dropMalformed},
		{"empty", nil, 0, dropMalformed},
	} {
		var tmp [CIDLen]byte
		g, v := r.route(tt.b, &tmp)
		if g != tt.gen || v != tt.v {
			t.Errorf("%s: (%d, %d), want (%d, %d)", tt.name, g, v, tt.gen, tt.v)
		}
	}
}

// TestForwarding: two generations on one socket. Whichever reads a packet,
// it reaches the generation its ID names, with the client's address; new
// connections stay with the old one until it drains, then go to the new
// one.
func TestForwarding(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("forwarding uses Linux's abstract unix sockets")
	}
	t.Run("1 to 2", func(t *testing.T) { testForwarding(t, 1) })
	// Generations are told apart modulo 65,536.
	t.Run("65535 to 65536", func(t *testing.T) { testForwarding(t, 65535) })
}

func testForwarding(t *testing.T, gen int) {
	k := family(t)
	shared := udp(t)
	old := newRouter(t, shared, k, gen)
	// The new process reads through a descriptor of its own for the same
	// socket, as after a restart.
	young := newRouter(t, dupOf(t, shared), k, gen+1)
	oldID, _ := old.GenerateConnectionID()
	youngID, _ := young.GenerateConnectionID()

	client := udp(t)
	send := func(b []byte) {
		if _, err := client.WriteTo(b, shared.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Many packets each: both processes read the socket, so some of each
	// are forwarded.
	for i := 0; i < 50; i++ {
		send(shortPacket(oldID, "to old"))
		send(shortPacket(youngID, "to young"))
	}
	for i := 0; i < 50; i++ {
		if got, addr := read(t, old); got != string(shortPacket(oldID, "to old")) || addr.String() != client.LocalAddr().String() {
			t.Fatalf("old got %q from %v", got, addr)
		}
		if got, _ := read(t, young); got != string(shortPacket(youngID, "to young")) {
			t.Fatalf("young got %q", got)
		}
	}
	// Which process reads which packet is the kernel's choice: make one
	// cross over for certain.
	var tmp [CIDLen]byte
	buf := bufs.Get().(*[maxPacket]byte)
	n := copy(buf[:], shortPacket(youngID, "crossed"))
	received := young.Stats().Received
	old.dispatch(packet{buf: buf, n: n, addr: client.LocalAddr()}, &tmp)
	if got, addr := read(t, young); got != string(shortPacket(youngID, "crossed")) || addr.String() != client.LocalAddr().String() {
		t.Fatalf("young got %q from %v", got, addr)
	}
	if young.Stats().Received != received+1 {
		t.Fatal("the crossed packet was not counted as received")
	}
	so := old.Stats()

	// A new connection while the old one serves: whoever reads it takes it.
	old.Drain()
	cid := []byte("client-chosen-id")
	for i := 0; i < 20; i++ {
		send(initial(cid[:8], "hello"))
	}
	for i := 0; i < 20; i++ {
		if got, _ := read(t, young); !bytes.HasSuffix([]byte(got), []byte("hello")) {
			t.Fatalf("young got %q", got)
		}
	}
	if n := old.Stats().Local; n != so.Local {
		t.Fatalf("the draining process took %d new packets", n-so.Local)
	}
}

// TestForwardSocketRejectsStrangers: datagrams on the forward socket that
// lack the family's proof, or are malformed, are dropped and counted.
func TestForwardSocketRejectsStrangers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("forwarding uses Linux's abstract unix sockets")
	}
	k := family(t)
	r := newRouter(t, udp(t), k, 3)
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: r.base + "3", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, _ := r.GenerateConnectionID()
	pkt := shortPacket(id, "payload")
	good := append(append(append(append([]byte(nil), k.Forward[:]...), 4, 127, 0, 0, 1), 0x12, 0x34), pkt...)
	for _, b := range [][]byte{
		append(make([]byte, 16), good[16:]...), // no proof
		good[:16],                              // proof only
		append(append([]byte(nil), good[:16]...), 5, 1, 2, 3, 4, 5, 0, 1, 0x40), // bad address length
		append([]byte(nil), good[:23]...),                                       // no packet
	} {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(good); err != nil {
		t.Fatal(err)
	}
	got, addr := read(t, r)
	if got != string(pkt) || addr.String() != "127.0.0.1:4660" {
		t.Fatalf("got %q from %v", got, addr)
	}
	st := r.Stats()
	if st.Foreign != 1 || st.Malformed != 3 || st.Received != 1 {
		t.Fatalf("stats %+v, want 1 foreign, 3 malformed, 1 received", st)
	}
}

// BenchmarkRoute is the routing decision for a 1-RTT packet, the hot path
// of every HTTP/3 connection.
func BenchmarkRoute(b *testing.B) {
	k := family(b)
	r := &Router{keys: k, tag: 7}
	r.block, _ = newBlock(k)
	id, _ := r.GenerateConnectionID()
	pkt := shortPacket(id, string(make([]byte, 1200)))
	var tmp [CIDLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, v := r.route(pkt, &tmp); v != toGeneration {
			b.Fatal(v)
		}
	}
}

// TestFlood: a peer that sends faster than the QUIC stack reads fills the
// queue; what does not fit is dropped and counted, and the router goes on.
func TestFlood(t *testing.T) {
	k := family(t)
	pc := udp(t)
	pc.SetReadBuffer(4 << 20)
	r := newRouter(t, pc, k, 1)
	id, _ := r.GenerateConnectionID()
	client := udp(t)
	pkt := shortPacket(id, "flood")
	for i := 0; i < 3000; i++ {
		client.WriteTo(pkt, pc.LocalAddr())
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Local+r.Stats().Overflow < 3000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := r.Stats()
	if st.Overflow == 0 || st.Local != int64(cap(r.in)) {
		t.Fatalf("stats %+v: want the queue (%d) full and the rest counted as overflow", st, cap(r.in))
	}
	if got, _ := read(t, r); got != string(pkt) {
		t.Fatalf("after the flood: %q", got)
	}
}

// BenchmarkForward is a packet read by the wrong process: routed,
// forwarded over the unix socket, received and queued by its owner, and
// read by the owner's QUIC stack.
func BenchmarkForward(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("forwarding uses Linux's abstract unix sockets")
	}
	k := family(b)
	shared := udp(b)
	old := newRouter(b, shared, k, 1)
	young := newRouter(b, dupOf(b, shared), k, 2)
	id, _ := young.GenerateConnectionID()
	benchDispatch(b, old, young, shortPacket(id, string(make([]byte, 1200))))
}

// benchDispatch times pkt read by from's socket reader, routed, and read
// by to's QUIC stack.
func benchDispatch(b *testing.B, from, to *Router, pkt []byte) {
	client := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4433}
	var tmp [CIDLen]byte
	out := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf := bufs.Get().(*[maxPacket]byte)
		from.dispatch(packet{buf: buf, n: copy(buf[:], pkt), addr: client}, &tmp)
		if _, _, err := to.ReadFrom(out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMarkComesLast: a marker queued after Drain comes behind every new
// connection's packet the router took before, and no such packet is
// taken after; answers to the marker go nowhere.
func TestMarkComesLast(t *testing.T) {
	r := newRouter(t, udp(t), family(t), 5)
	client := udp(t)
	var tmp [CIDLen]byte
	dispatch := func(payload string) {
		buf := bufs.Get().(*[maxPacket]byte)
		n := copy(buf[:], initial([]byte("client-1"), payload))
		r.dispatch(packet{buf: buf, n: n, addr: client.LocalAddr()}, &tmp)
	}
	for i := range 3 {
		dispatch(fmt.Sprint("before ", i))
	}
	r.Drain()
	dispatch("after") // no successor: dropped
	r.Mark()
	for i := range 3 {
		got, addr := read(t, r)
		if want := fmt.Sprint("before ", i); !strings.HasSuffix(got, want) || IsMarker(addr) {
			t.Fatalf("read %q from %v, want %q", got, addr, want)
		}
	}
	got, addr := read(t, r)
	if !IsMarker(addr) {
		t.Fatalf("read %q from %v, want the marker", got, addr)
	}
	b := []byte(got)
	// A QUIC v1 Initial of at least 1,200 bytes whose length field covers
	// the rest of the datagram exactly.
	if len(b) < 1200 || b[0]&0xf0 != 0xc0 || binary.BigEndian.Uint32(b[1:5]) != 1 || b[5] != 8 {
		t.Fatalf("marker header % x, %d bytes", b[:18], len(b))
	}
	if l := binary.BigEndian.Uint16(b[16:18]); l&0xc000 != 0x4000 || int(l&0x3fff) != len(b)-18 {
		t.Fatalf("marker length field %#x for %d bytes", l, len(b))
	}
	if st := r.Stats(); st.Local != 3 || st.NoRoute != 1 {
		t.Fatalf("stats %+v, want 3 local and 1 without a route", st)
	}
	if n, err := r.WriteTo(b, addr); n != len(b) || err != nil {
		t.Fatalf("writing to the marker: %d, %v", n, err)
	}
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, addr, err := r.ReadFrom(make([]byte, maxPacket)); err == nil {
		t.Fatalf("read %d bytes from %v after the marker", n, addr)
	}
}

// BenchmarkNewConnection is a new connection's packet, routed, queued and
// read by the QUIC stack of the process that read it.
func BenchmarkNewConnection(b *testing.B) {
	r := newRouter(b, udp(b), family(b), 1)
	benchDispatch(b, r, r, initial([]byte("client-1"), string(make([]byte, 1200))))
	if st := r.Stats(); st.Forwarded != 0 {
		b.Fatalf("stats %+v", st)
	}
}
