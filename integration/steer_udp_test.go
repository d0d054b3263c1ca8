package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hupd/hupd/internal/logev"
)

func init() {
	// udp-pid: answer every datagram on the passed UDP socket (go-systemd's
	// activation.PacketConns) with "pid N " and the datagram; READY=1. On
	// TERM it stops reading (the answer it is writing still goes out) and
	// exits: what waits in its socket's queue then is dropped with it.
	childModes["udp-pid"] = func([]string) {
		pcs, err := activation.PacketConns()
		if err != nil || len(pcs) != 1 {
			fmt.Fprintf(os.Stderr, "child udp-pid: want one packet socket (%d, %v)\n", len(pcs), err)
			os.Exit(3)
		}
		pc := pcs[0]
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		go func() {
			<-sigs
			pc.SetReadDeadline(time.Now())
		}()
		if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); !ok {
			fmt.Fprintf(os.Stderr, "child udp-pid: READY=1 not sent (%v)\n", err)
			os.Exit(3)
		}
		pid := os.Getpid()
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				os.Exit(0)
			}
			pc.WriteTo(fmt.Appendf(nil, "pid %d %s", pid, buf[:n]), from)
		}
	}
}

// udpAnswer is one datagram of the client and who answered it.
type udpAnswer struct {
	sent time.Time
	pid  int // 0: unanswered within the deadline
}

// udpClient sends numbered datagrams to addr one at a time, each waiting
// for its answer (udpDeadline at most: then it counts as unanswered and
// the next one goes), until stop is closed; it returns every datagram.
func udpClient(addr *net.UDPAddr, stop <-chan struct{}) ([]udpAnswer, error) {
	const udpDeadline = 2 * time.Second
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []udpAnswer
	buf := make([]byte, 512)
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return out, nil
		default:
		}
		a := udpAnswer{sent: time.Now()}
		if _, err := c.WriteToUDP(fmt.Appendf(nil, "%d", seq), addr); err != nil {
			return out, err
		}
		c.SetReadDeadline(a.sent.Add(udpDeadline))
		for {
			n, _, err := c.ReadFromUDP(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return out, err
			}
			var pid, got int
			if _, err := fmt.Sscanf(string(buf[:n]), "pid %d %d", &pid, &got); err == nil && got == seq {
				a.pid = pid
				break
			}
			// A late answer to an earlier datagram: not this one's.
		}
		out = append(out, a)
	}
}

// A UDP socket steered end to end: a client sends datagrams one after the
// other, each waiting for its answer, while the program is swapped 20
// times. Every datagram sent after a swap's ready (once hupd reload has
// answered) is answered by the new generation, and none is lost.
//
// What steering can promise for UDP: each datagram goes to one member of
// the group, the newest ready generation's once it is ready; those that
// reached the old generation's socket before stay in its receive queue,
// and hupd sends the stop signal only once the old program has read them
// all (the queue is empty). So a program that stops reading at its stop
// signal loses nothing that was sent to the service. What it cannot
// promise: a datagram the old program has read but not yet answered when
// it stops (its own drain, as for TCP connections in its hands), a
// datagram dropped because a receive buffer was full or by the network,
// and any affinity: UDP has no connection, so the next datagram of the
// same client goes to the new generation, whatever the old one remembers
// of it. Here the client waits for each answer, so none is in flight in
// the old program when it gets its stop signal: every one must be
// answered.
//
// Without steering this test passes as well (checked): one shared socket
// has one queue that outlives every generation, so UDP through it loses
// nothing either, and the old generation's stop signal follows the new
// one's ready at once. It proves that steering keeps that promise with a
// socket per generation (the old one's queue is read before its stop
// signal) and that new datagrams go to the new generation; the losses
// steering prevents are TCP's (TestSteerBareShutdownLosesNothing).
func TestSteerUDP(t *testing.T) {
	h := StartHupd(t, append([]string{"run", "--steer", "--listen", "dns=udp://127.0.0.1:0", "--"}, childCmd("udp-pid")...)...)
	addr, err := net.ResolveUDPAddr("udp", HostPort(h.Listening("dns")))
	if err != nil {
		t.Fatal(err)
	}
	h.WaitEvent(logev.ChildReady, 1, swapGen(1))
	genOf := map[int]int{h.ChildPID(1): 1}
	stop := make(chan struct{})
	type result struct {
		answers []udpAnswer
		err     error
	}
	done := make(chan result, 1)
	go func() {
		a, err := udpClient(addr, stop)
		done <- result{a, err}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-done
		}
	}()
	const swaps = 20
	readyBy := map[int]time.Time{} // generation → a time by which it was ready and steered to
	for gen := 1; gen <= swaps; gen++ {
		out, err := hupdReload(h)
		if err != nil || !strings.HasPrefix(out, "reload ok (swap)") {
			t.Fatalf("reload after gen %d: %v: %s", gen, err, out)
		}
		readyBy[gen+1] = time.Now()
		genOf[h.ChildPID(gen+1)] = gen + 1
		h.WaitEvent(logev.ChildExited, 1, swapGen(gen))
	}
	close(stop)
	r := <-done
	if r.err != nil {
		t.Fatalf("client: %v", r.err)
	}
	unanswered := 0
	answered := map[int]int{} // generation → datagrams it answered
	for _, a := range r.answers {
		if a.pid == 0 {
			unanswered++
			continue
		}
		gen, ok := genOf[a.pid]
		if !ok {
			t.Fatalf("a datagram answered by pid %d, no generation's", a.pid)
		}
		answered[gen]++
		// The newest generation ready when it was sent, or a later one.
		for g := gen + 1; g <= swaps+1; g++ {
			if a.sent.After(readyBy[g]) {
				t.Fatalf("a datagram sent %s after generation %d was ready was answered by generation %d",
					a.sent.Sub(readyBy[g]), g, gen)
			}
		}
	}
	t.Logf("%d datagrams across %d swaps, %d unanswered; answered per generation: %v", len(r.answers), swaps, unanswered, answered)
	if unanswered != 0 {
		t.Fatalf("%d of %d datagrams unanswered across %d swaps with --steer", unanswered, len(r.answers), swaps)
	}
	for g := 1; g <= swaps+1; g++ {
		if answered[g] == 0 {
			t.Errorf("generation %d answered nothing", g)
		}
	}
	if n := len(h.Events(logev.SteerQueueLeft)); n != 0 {
		t.Errorf("%d stop signals sent with datagrams still queued", n)
	}
}
