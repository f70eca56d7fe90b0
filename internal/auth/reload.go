package auth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is where the keys come from: entries given inline (API_KEYS),
// which every load keeps, and a file (API_KEYS_FILE), which may change.
type Source struct {
	Inline string
	File   string // "" for none
}

// Load reads and parses the inline entries and the file.
func (s Source) Load() (*Keys, error) {
	text := s.Inline
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("API_KEYS_FILE: %w", err)
		}
		text += "\n" + string(b)
	}
	keys, err := ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	return keys, nil
}

// Reloader keeps a Keys current with its Source: it reloads on a signal
// (SIGHUP) and when the file changes, and on any failure (the file is
// gone, unreadable or holds a bad entry) it logs, counts and keeps the
// keys it has, so that a botched edit never locks every client out.
type Reloader struct {
	keys  *Keys
	src   Source
	every time.Duration
	log   *slog.Logger
	runs  *prometheus.CounterVec

	stamp fileStamp // the file as last read; owned by Run's goroutine
}

// NewReloader reloads into keys from src, looking at the file every
// interval (0: only on a signal). Its collectors are registered on reg:
// analytics_api_keys_reloads_total{result} and analytics_api_keys.
func NewReloader(keys *Keys, src Source, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) *Reloader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{keys: keys, src: src, every: interval, log: log,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "analytics_api_keys_reloads_total",
			Help: "Reloads of API_KEYS_FILE (on SIGHUP or a change of the file) by result: ok, or error (the previous keys stay).",
		}, []string{"result"})}
	r.runs.WithLabelValues("ok")
	r.runs.WithLabelValues("error")
	reg.MustRegister(r.runs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "analytics_api_keys",
		Help: "API keys configured (API_KEYS and API_KEYS_FILE).",
	}, func() float64 { return float64(keys.Len()) }))
	return r
}

// Load is the first load, at start: an error is the caller's to report
// (the server does not start on a bad file). The file is looked at before
// it is read, so that a change in between is seen by Run.
func (r *Reloader) Load() error {
	r.stamp = stampOf(r.src.File)
	keys, err := r.src.Load()
	if err != nil {
		return err
	}
	r.keys.Replace(keys)
	return nil
}

// Run reloads on every value from signals and whenever the file's
// identity, size or modification time changes, until ctx ends.
func (r *Reloader) Run(ctx context.Context, signals <-chan os.Signal) {
	var tick <-chan time.Time
	if r.every > 0 && r.src.File != "" {
		t := time.NewTicker(r.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-signals:
			r.stamp = stampOf(r.src.File)
			r.reload(sig.String())
		case <-tick:
			if st := stampOf(r.src.File); !st.same(r.stamp) {
				r.stamp = st
				r.reload("file changed")
			}
		}
	}
}

func (r *Reloader) reload(trigger string) {
	if r.src.File == "" {
		r.log.Info("API keys: nothing to reload (no API_KEYS_FILE)", "trigger", trigger)
		return
	}
	keys, err := r.src.Load()
	if err != nil {
		r.runs.WithLabelValues("error").Inc()
		r.log.Error("API keys not reloaded; the previous keys stay in use", "trigger", trigger, "keys", r.keys.Len(), "err", err)
		return
	}
	r.keys.Replace(keys)
	r.runs.WithLabelValues("ok").Inc()
	r.log.Info("API keys reloaded", "trigger", trigger, "keys", keys.Len())
}

// fileStamp tells a changed file from the same one: which file the path
// names (a rename or a Kubernetes secret's symlink swap changes it), its
// size and its modification time.
type fileStamp struct{ info os.FileInfo } // nil info: missing or unreadable

func stampOf(path string) fileStamp {
	if path == "" {
		return fileStamp{}
	}
	fi, _ := os.Stat(path) // a missing file is a stamp too: its return is a change
	return fileStamp{info: fi}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}
