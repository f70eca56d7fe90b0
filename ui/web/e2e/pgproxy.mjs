// A TCP proxy between analyticsd and PostgreSQL that a test can cut and
// restore, as internal/testenv's proxy does for the Go tests: cut closes
// every connection and refuses new ones (the server sees a database that
// is gone), restore lets them through again.
import { connect, createServer } from "node:net";

/** Starts a proxy to target ({host, port}) on 127.0.0.1; resolves to { port, cut, restore, close }. */
export function startProxy(target) {
  const conns = new Set();
  let down = false;
  const server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    const pair = { client, upstream };
    conns.add(pair);
    const drop = () => {
      conns.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () =>
      ok({
        port: server.address().port,
        cut() {
          down = true;
          for (const { client, upstream } of conns) {
            client.destroy();
            upstream.destroy();
          }
          conns.clear();
        },
        restore() {
          down = false;
        },
        close() {
          this.cut();
          return new Promise((done) => server.close(() => done()));
        },
      }),
    );
  });
}
