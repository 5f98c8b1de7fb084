// Package web holds the board's web UI: plain HTML, CSS and JavaScript
// embedded in the binary (no build step, no CDN), served by the server
// under /ui/. The UI signs in with an API token kept in the browser's
// session storage and talks only to the /v1 API.
package web

import "embed"

// FS holds static/: index.html, app.js, style.css.
//
//go:embed static
var FS embed.FS
