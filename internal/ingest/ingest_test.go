package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestParseContentEncoding(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  Encoding
		ok    bool
	}{
		{nil, Identity, true},
		{[]string{""}, Identity, true},
		{[]string{"identity"}, Identity, true},
		{[]string{"gzip"}, Gzip, true},
		{[]string{"GZip "}, Gzip, true},
		{[]string{"x-gzip"}, Gzip, true},
		{[]string{"identity, gzip"}, Gzip, true},
		{[]string{"br"}, 0, false},
		{[]string{"deflate"}, 0, false},
		{[]string{"zstd"}, 0, false},
		{[]string{"gzip, br"}, 0, false},
		{[]string{"gzip", "gzip"}, 0, false},
		{[]string{"gzip, gzip"}, 0, false},
	} {
		got, err := ParseContentEncoding(tc.lines)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %v %v", tc.lines, got, err)
		}
	}
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingReader counts what was read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestReadBody(t *testing.T) {
	plain := []byte(`[{"user_id":"u","event_type":"click"}]`)
	if got, err := ReadBody(Gzip, bytes.NewReader(gzipped(t, plain))); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("gzip: %q %v", got, err)
	}
	if got, err := ReadBody(Identity, bytes.NewReader(plain)); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("identity: %q %v", got, err)
	}
	// Two members are one gzip stream (RFC 1952).
	two := append(gzipped(t, plain[:10]), gzipped(t, plain[10:])...)
	if got, err := ReadBody(Gzip, bytes.NewReader(two)); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("two members: %q %v", got, err)
	}
	z := gzipped(t, plain)
	corrupt := bytes.Clone(z)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC
	for name, body := range map[string][]byte{
		"plain text":      plain,
		"empty":           nil,
		"truncated":       z[:len(z)-5],
		"bad checksum":    corrupt,
		"trailing bytes":  append(bytes.Clone(z), "garbage"...),
		"deflate, no hdr": z[10:],
	} {
		if _, err := ReadBody(Gzip, bytes.NewReader(body)); !errors.Is(err, ErrBadGzip) {
			t.Errorf("%s: %v, want ErrBadGzip", name, err)
		}
	}
	// Exactly the limit passes; one byte more does not (a small limit
	// here: the HTTP test sends 6 MB).
	const limit = 64 << 10
	full := gzipped(t, bytes.Repeat([]byte("x"), limit))
	if got, err := readBody(Gzip, bytes.NewReader(full), limit); err != nil || len(got) != limit {
		t.Fatalf("the limit decompressed: %d %v", len(got), err)
	}
	if _, err := readBody(Gzip, bytes.NewReader(append(full, gzipped(t, []byte("x"))...)), limit); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("the limit + 1 decompressed: %v", err)
	}
	if _, err := readBody(Identity, bytes.NewReader(make([]byte, limit+1)), limit); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("the limit + 1 plain: %v", err)
	}
	// Data gzip cannot compress is stored in blocks with a few bytes of
	// framing each (what NoCompression writes for any data): a body
	// within the limit still fits in MaxCompressedBytes.
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	_, _ = zw.Write(make([]byte, MaxBodyBytes))
	_ = zw.Close()
	if buf.Len() > MaxCompressedBytes {
		t.Fatalf("5 MB stored uncompressed in gzip is %d bytes, over MaxCompressedBytes %d", buf.Len(), MaxCompressedBytes)
	}
}

// TestGzipBombStopsAtTheLimit: 1 GiB of zeros in about a megabyte of
// gzip is refused having inflated no more than the limit: it reads a few
// kilobytes of the input and allocates a few times the limit, not the
// gigabyte.
func TestGzipBombStopsAtTheLimit(t *testing.T) {
	member := gzipped(t, make([]byte, 1<<20))
	bomb := bytes.Repeat(member, 1024) // 1024 members of 1 MiB: 1 GiB
	if len(bomb) > MaxCompressedBytes {
		t.Fatalf("the bomb is %d bytes compressed; it should pass the compressed limit", len(bomb))
	}
	src := &countingReader{r: bytes.NewReader(bomb)}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadBody(Gzip, src)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("bomb: %v, want ErrBodyTooLarge", err)
	}
	// io.ReadAll's growing buffer allocates a few times what it returns.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*MaxBodyBytes {
		t.Errorf("decoding the bomb allocated %d MB; the limit is %d MB", alloc>>20, MaxBodyBytes>>20)
	}
	if max := int64(len(member)) * 8; src.n > max {
		t.Errorf("read %d of the bomb's %d bytes; the limit is reached within the first 6 members (%d bytes)", src.n, len(bomb), max)
	}
	if !strings.Contains(ErrBodyTooLarge.Error(), "5 MB") {
		t.Fatal(ErrBodyTooLarge)
	}
}
