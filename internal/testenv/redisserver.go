package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a private redis-server process on its own port, for tests
// that stop and start Redis under a running server.
type RedisServer struct {
	t    testing.TB
	bin  string
	Port int
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server on a free loopback port and
// stops it when the test ends. Without a redis-server binary it skips, or
// fails under CI.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin := redisServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &RedisServer{t: t, bin: bin, Port: port}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// redisServer finds the redis-server binary; without one the test skips,
// or fails under CI.
func redisServer(t testing.TB) string {
	t.Helper()
	return Binary(t, "redis-server", "apt-get install redis-server")
}

// Binary finds a program the test runs (install says how to get it);
// without it the test skips, or fails under CI: a missing tool must not
// hide a test there.
func Binary(t testing.TB, name, install string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: %s is not on PATH, and CI is set (%s)", name, install)
		}
		t.Skipf("%s is not on PATH (%s)", name, install)
	}
	return bin
}

// URL is the server's redis:// URL.
func (s *RedisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Start (re)starts the process on the same port and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("testenv: start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testenv: redis-server on port %d did not answer: %v", s.Port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process and waits for it to exit.
func (s *RedisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// StartRedisCluster starts a three-node Redis Cluster (three masters, the
// slots split evenly) on free loopback ports and returns its cluster URL
// for redis.ParseClusterURL. The nodes stop when the test ends.
func StartRedisCluster(t testing.TB) string {
	t.Helper()
	bin := redisServer(t)
	dir := t.TempDir()
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	ctx := context.Background()
	var clients []*redis.Client
	for i, port := range ports {
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port), "--dir", dir, "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: start redis-server: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
		waitFor(t, func() error { return c.Ping(ctx).Err() })
		lo, hi := i*16384/3, (i+1)*16384/3-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("testenv: cluster addslots: %v", err)
		}
	}
	for _, port := range ports[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(port)).Err(); err != nil {
			t.Fatalf("testenv: cluster meet: %v", err)
		}
	}
	for _, c := range clients {
		waitFor(t, func() error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("cluster not ready: %s", info)
			}
			return nil
		})
	}
	return fmt.Sprintf("redis://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d", ports[0], ports[1], ports[2])
}

func waitFor(t testing.TB, f func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
