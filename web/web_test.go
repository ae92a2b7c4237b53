package web_test

import (
	"io"
	"io/fs"
	"net"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/web"
)

// serve serves web.FS() on a real listener and returns its base URL.
func serve(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServerFS(web.FS())}
	go func() { _ = srv.Serve(ln) }() // ends when Close closes the listener
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func readAll(tb testing.TB, name string) string {
	tb.Helper()
	b, err := fs.ReadFile(web.FS(), name)
	if err != nil {
		tb.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// files lists every file of the dashboard with one of the extensions.
func files(tb testing.TB, exts ...string) []string {
	tb.Helper()
	var out []string
	err := fs.WalkDir(web.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, e := range exts {
			if strings.HasSuffix(p, e) {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestServedOverHTTP(t *testing.T) {
	t.Parallel()
	base := serve(t)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<script type="module" src="js/app.js">`},
		{"/js/app.js", "javascript", "hashchange"},
		{"/js/api.js", "javascript", "export class SSEParser"},
		{"/style.css", "text/css", ":focus-visible"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			res, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %q (ES modules need a JavaScript type)", ct, tt.contentType)
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
		})
	}
}

var (
	importRe = regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^;]*?\bfrom\s+'([^']+)'|^\s*import\s+'([^']+)'`)
	refRe    = regexp.MustCompile(`(?:src|href)="([^"#]+)"`)
)

// TestEveryReferenceResolves fails when index.html or a module names a file that is not
// embedded: a typo there would only show up as a blank page in a browser.
func TestEveryReferenceResolves(t *testing.T) {
	t.Parallel()
	type ref struct{ from, to string }
	var refs []ref
	for _, m := range refRe.FindAllStringSubmatch(readAll(t, "index.html"), -1) {
		refs = append(refs, ref{"index.html", m[1]})
	}
	for _, f := range files(t, ".js") {
		for _, m := range importRe.FindAllStringSubmatch(readAll(t, f), -1) {
			to := m[1] + m[2]
			if !strings.HasPrefix(to, "./") && !strings.HasPrefix(to, "../") {
				t.Errorf("%s imports %q: only relative imports work without a bundler", f, to)
				continue
			}
			refs = append(refs, ref{f, path.Join(path.Dir(f), to)})
		}
	}
	if len(refs) < 10 {
		t.Fatalf("found only %d references; the patterns no longer match the sources", len(refs))
	}
	for _, r := range refs {
		if _, err := fs.Stat(web.FS(), r.to); err != nil {
			t.Errorf("%s refers to %s, which is not embedded", r.from, r.to)
		}
	}
}

// TestNothingLoadsFromOutside keeps the dashboard self-contained: no CDN, no web fonts, no
// absolute URLs. The SVG namespace is a name, not a download.
func TestNothingLoadsFromOutside(t *testing.T) {
	t.Parallel()
	bad := regexp.MustCompile(`(?i)https?://|(?:src|href)="//|url\(\s*['"]?(?:https?:)?//|@import|fonts\.googleapis`)
	allowed := strings.NewReplacer("http://www.w3.org/2000/svg", "")
	checked := 0
	for _, f := range files(t, ".html", ".js", ".css", ".svg") {
		checked++
		for i, line := range strings.Split(readAll(t, f), "\n") {
			if loc := bad.FindString(allowed.Replace(line)); loc != "" {
				t.Errorf("%s:%d refers outside the gateway (%q): %s", f, i+1, loc, strings.TrimSpace(line))
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files", checked)
	}
}

// TestIndexIsAccessibleShell checks the parts of the page shell every view relies on.
func TestIndexIsAccessibleShell(t *testing.T) {
	t.Parallel()
	index := readAll(t, "index.html")
	for _, want := range []string{
		`<html lang="en">`,
		`name="viewport"`,
		`<main id="main"`,
		`aria-live="polite"`,
		`class="skip" href="#main"`,
		`Content-Security-Policy`,
	} {
		if !strings.Contains(index, want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
}
