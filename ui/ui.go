// Package ui embeds the dashboard's built assets (ui/web builds them into
// dist; the HTTP edge serves them).
package ui

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Assets is the built dashboard: index.html and assets/ with
// content-hashed names.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is embedded above
	}
	return sub
}
