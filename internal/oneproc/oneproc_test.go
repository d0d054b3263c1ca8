package oneproc

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// envHelper makes the test binary print its GOMAXPROCS and exit.
const envHelper = "ONEPROC_TEST_PRINT"

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) != "" {
		os.Stdout.WriteString(strconv.Itoa(runtime.GOMAXPROCS(0)))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// gomaxprocs runs the test binary with env added and returns the
// GOMAXPROCS its init left.
func gomaxprocs(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append(env, envHelper+"=1")...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("test binary: %v", err)
	}
	n, err := strconv.Atoi(string(out))
	if err != nil {
		t.Fatalf("test binary printed %q", out)
	}
	return n
}

// TestOneP: a process that imports oneproc runs on one P, whatever the
// number of CPUs (on a machine of one CPU this cannot fail).
func TestOneP(t *testing.T) {
	if runtime.NumCPU() == 1 {
		t.Log("one CPU: the runtime's default is 1 already")
	}
	if n := gomaxprocs(t); n != 1 {
		t.Errorf("GOMAXPROCS %d; want 1", n)
	}
}

// TestEnvironmentWins: GOMAXPROCS set in the environment is left as it is.
func TestEnvironmentWins(t *testing.T) {
	if n := gomaxprocs(t, "GOMAXPROCS=3"); n != 3 {
		t.Errorf("GOMAXPROCS=3 in the environment: GOMAXPROCS %d; want 3", n)
	}
}
