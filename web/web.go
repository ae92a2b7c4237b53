// Package web owns the embedded dashboard: hand-written HTML, CSS and ES modules under static/,
// compiled into the binary with go:embed so that `go build` needs no Node toolchain and the
// gateway serves the dashboard itself at /.
//
// The dashboard is a client of the public JSON API only; this package holds no handlers.
// web imports only the standard library; it must not import server, agent, tools, db or stream.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// root is static/ seen as the top of the tree. fs.Sub fails only on an invalid path name, and
// "static" is a valid one, so the error cannot happen.
var root, _ = fs.Sub(static, "static")

// FS returns the dashboard's files rooted at the folder that holds index.html. Routing is
// hash-based (#/endpoints/…), so a server needs only to serve these files and index.html at /.
func FS() fs.FS { return root }
