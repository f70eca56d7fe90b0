// Package redis is the server's one Redis adapter: the summary cache
// (summary.Cache) and the live stream's coordination (stream.Coordinator:
// lease, renewal, fenced compare-and-set publish, pub/sub, re-read), on one
// node or a Redis Cluster. Nothing else in the server talks to Redis.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key, so that deployments can share a Redis.
const DefaultPrefix = "analytics:"

// Client is a go-redis client of either kind, one node or a cluster.
type Client = goredis.UniversalClient

// NewClient connects to url: one node (redis://, rediss://, unix://), or
// with cluster a Redis Cluster given seed nodes as
// redis://host1:6379?addr=host2:6379&addr=host3:6379. It does no I/O.
func NewClient(rawURL string, cluster bool) (Client, error) {
	o, err := parseURL(rawURL, cluster)
	if err != nil {
		return nil, err
	}
	failFast(o)
	return goredis.NewUniversalClient(o), nil
}

// failFast sets timeouts and retries for a cache that must fail fast:
// go-redis's defaults (3 retries, 5 dial attempts each, 5 s dial timeout)
// make every request wait seconds while Redis is down. One retry is kept
// so that the first command on a connection Redis closed (after a restart)
// is retried on a new one. It is the one tuning of both client kinds.
func failFast(o *goredis.UniversalOptions) {
	o.DialTimeout = time.Second
	o.ReadTimeout = 500 * time.Millisecond
	o.WriteTimeout = 500 * time.Millisecond
	o.PoolTimeout = time.Second
	o.MaxRetries = 1
	o.DialerRetries = 1
	o.ClientName = "analyticsd"
}

// parseURL reads a URL with go-redis's own parser (credentials, TLS,
// database, pool settings in the query) into the options both client
// kinds are built from. A cluster's further seed nodes come as addr=
// parameters.
func parseURL(rawURL string, cluster bool) (*goredis.UniversalOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("redis: REDIS_URL is not a URL")
	}
	q := u.Query()
	seeds := q["addr"]
	q.Del("addr")
	u.RawQuery = q.Encode()
	if len(seeds) > 0 && !cluster {
		return nil, errors.New("redis: addr= names cluster seed nodes; set REDIS_CLUSTER=true")
	}
	o, err := goredis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("redis: REDIS_URL: %w", err)
	}
	if cluster && o.DB != 0 {
		return nil, errors.New("redis: a Redis Cluster has only database 0")
	}
	return &goredis.UniversalOptions{
		Addrs:         append([]string{o.Addr}, seeds...),
		IsClusterMode: cluster,
		Username:      o.Username, Password: o.Password, DB: o.DB, Protocol: o.Protocol, TLSConfig: o.TLSConfig,
		PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns,
		MaxActiveConns: o.MaxActiveConns, ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
	}, nil
}

// UseLogger routes go-redis's own chatter (one line per failed dial while
// Redis is down) to debug level: the server logs outages itself, rate
// limited, and counts them in metrics. go-redis has one logger per process.
func UseLogger(log *slog.Logger) { goredis.SetLogger(logger{log}) }

type logger struct{ log *slog.Logger }

func (l logger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
