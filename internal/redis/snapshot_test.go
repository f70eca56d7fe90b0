package redis

import (
	"testing"
	"time"

	"github.com/liveanalytics/analyticsd/stream"
)

func FuzzUnmarshalSnapshot(f *testing.F) {
	f.Add("42\n1700000000000\n{\"data\":{}}")
	f.Add("x\n1\n{}")
	f.Add("1\n2")
	f.Add("")
	f.Fuzz(func(t *testing.T, p string) {
		s, err := unmarshalSnapshot(p)
		if err != nil {
			return
		}
		back, err := unmarshalSnapshot(marshalSnapshot(s))
		if err != nil || back.Version != s.Version || !back.Published.Equal(s.Published) || string(back.Data) != string(s.Data) {
			t.Fatalf("round trip of %q: %+v %v", p, back, err)
		}
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := &stream.Snapshot{Version: 7, Published: time.UnixMilli(1700000000123), Data: []byte(`{"a":"b\nc"}`)}
	back, err := unmarshalSnapshot(marshalSnapshot(s))
	if err != nil || back.Version != 7 || !back.Published.Equal(s.Published) || string(back.Data) != string(s.Data) {
		t.Fatalf("%+v %v", back, err)
	}
}
