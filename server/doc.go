// Package server is bulkhead's HTTP API: REST + JSON, Server-Sent Events for
// streams, an OpenAPI 3 document generated from the route table at
// /openapi.json, Prometheus text metrics at /metrics, /healthz and /readyz.
//
// Auth: every non-public route needs a bearer token. Tokens are 32 random
// bytes stored as SHA-256 hashes in the control database; an admin token is
// made on first start and written 0600 to <state>/admin.token. A workspace
// token acts on its own workspace only: any other workspace id in the path
// or the ?workspace= query gets the same 404 as a missing workspace, and a
// token whose workspace was deleted (and perhaps re-created under the same
// id) stops working, because it is bound to the workspace's never-reused
// host uid. The unix socket <state>/bulkhead.sock (mode 0600, peers checked
// with SO_PEERCRED) is the local admin channel the CLI uses while a server
// holds the state dir.
//
// Errors: handlers return errors; toAPIError maps the workspace package's
// sentinels to statuses and keeps their text, and turns anything else into a
// 500 carrying only a request id (logged with the real error), so no host
// path or other tenant's data reaches a client.
//
// Concurrency: a Server is safe for concurrent use; Serve shuts down
// gracefully when its context ends.
package server
