package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/fmtbank/cmts/store"
	"github.com/gin-gonic/gin"
)

const (
	mimeFHIRJSON  = "application/fhir+json"
	mimeJSON      = "application/json"
	mimeJSONPatch = "application/json-patch+json"
	mimeCSV       = "text/csv"
)

// negotiate checks _format and Accept: JSON is what we write; a request only
// for XML (or anything else) gets 406 before any work is done. An operation
// may also be asked for CSV (text/csv): the operation decides whether it
// answers it (profileRoutes).
func (s *Server) negotiate(c *gin.Context) {
	if c.FullPath() == "/fhir"+exportFilePath+"/:job/:file" {
		// Bulk Data files are NDJSON, whatever the FHIR API speaks.
		c.Next()
		return
	}
	if strings.Contains(c.Request.URL.Path, "/$") && wantsCSV(c) {
		c.Next()
		return
	}
	if f := param(c, "_format"); f != "" {
		switch strings.ToLower(strings.TrimSpace(strings.SplitN(f, ";", 2)[0])) {
		case "json", mimeJSON, mimeFHIRJSON:
		case "html", "text/html":
			// Browsers: JSON is readable there too.
		default:
			s.fail(c, fhir.NotAcceptable(f))
			return
		}
		c.Next()
		return
	}
	if a := c.GetHeader("Accept"); a != "" && !acceptsJSON(a) {
		s.fail(c, fhir.NotAcceptable(a))
		return
	}
	c.Next()
}

// wantsCSV reports whether the request asks for CSV: _format csv or
// text/csv, or an Accept whose most preferred type (the first listed of the
// highest quality) is text/csv.
func wantsCSV(c *gin.Context) bool {
	if f := param(c, "_format"); f != "" {
		f = strings.ToLower(strings.TrimSpace(strings.SplitN(f, ";", 2)[0]))
		return f == "csv" || f == mimeCSV
	}
	best, bestQ := "", -1.0
	for _, part := range strings.Split(c.GetHeader("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, err := strconv.ParseFloat(params["q"], 64); err == nil {
			q = v
		}
		if q > bestQ && q > 0 {
			best, bestQ = mt, q
		}
	}
	return best == mimeCSV
}

func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				continue
			}
		}
		switch mt {
		case "*/*", "application/*", mimeJSON, mimeFHIRJSON, "text/html", "application/json+fhir":
			return true
		}
	}
	return false
}

// writeJSON writes a FHIR JSON body, indented under _pretty=true.
func (s *Server) writeJSON(c *gin.Context, status int, body []byte) {
	ct := jsonContentType(c)
	if param(c, "_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	c.Data(status, ct, body)
}

// jsonContentType is the Content-Type of a JSON answer: FHIR's, or plain
// JSON's for a client that asks for that alone.
func jsonContentType(c *gin.Context) string {
	if a := c.GetHeader("Accept"); strings.Contains(a, mimeJSON) && !strings.Contains(a, "fhir") {
		return mimeJSON + "; charset=utf-8"
	}
	return mimeFHIRJSON + "; charset=utf-8"
}

// base is the FHIR base URL for links: the configured one, else the
// request's own loopback host (checkHost refuses any other).
func (s *Server) base(c *gin.Context) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host + "/fhir"
}

func etag(vid int64) string { return `W/"` + strconv.FormatInt(vid, 10) + `"` }

// versionHeaders sets ETag and Last-Modified for a version.
func versionHeaders(c *gin.Context, v *store.Version) {
	c.Header("ETag", etag(v.VersionID))
	c.Header("Last-Modified", v.LastUpdated.UTC().Format(http.TimeFormat))
}

// readBody reads a request body of an accepted media type within the limit.
func (s *Server) readBody(c *gin.Context, accepted ...string) ([]byte, error) {
	ct := c.GetHeader("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return nil, fhir.UnsupportedMediaType(ct, accepted[0])
	}
	ok := false
	for _, a := range accepted {
		ok = ok || mt == a
	}
	if !ok {
		return nil, fhir.UnsupportedMediaType(ct, accepted[0])
	}
	if c.Request.ContentLength > s.opts.MaxBody {
		return nil, fhir.TooLarge(s.opts.MaxBody)
	}
	// Read into one buffer of the announced size where there is one: a
	// growing buffer would copy a large body several times over.
	var buf bytes.Buffer
	if n := c.Request.ContentLength; n > 0 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBody))
	body := buf.Bytes()
	if body == nil {
		body = []byte{} // an empty body, which a PATCH tells from none
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fhir.TooLarge(s.opts.MaxBody)
		}
		return nil, fhir.Invalid(fhir.IssueStructure, "The request body could not be read", "无法读取请求体")
	}
	return body, nil
}

// preferReturn reads Prefer: return=minimal|representation|OperationOutcome.
func preferReturn(c *gin.Context) string {
	for _, p := range strings.Split(c.GetHeader("Prefer"), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "return" {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return "representation"
}

// respondWrite answers a create or update as the client prefers.
func (s *Server) respondWrite(c *gin.Context, status int, v *store.Version, msg fhir.Message) {
	versionHeaders(c, v)
	loc := s.base(c) + "/" + v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.VersionID, 10)
	if status == http.StatusCreated || c.Request.Method != http.MethodGet {
		c.Header("Location", loc)
	}
	switch preferReturn(c) {
	case "minimal":
		c.Status(status)
		c.Writer.WriteHeaderNow()
	case "OperationOutcome":
		s.writeJSON(c, status, fhir.OperationOutcome([]fhir.Issue{{Severity: "information", Code: fhir.IssueInformation, Message: msg}},
			fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))))
	default:
		s.writeJSON(c, status, v.Resource)
	}
}

// now is the clock, in UTC at the precision the store keeps.
func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// checkHost refuses a request whose Host header names anything but a loopback
// host when no base URL is configured: links are built from Host then, and a
// foreign name there would put an attacker's host into self and next links
// (and is what a DNS-rebinding page sends to a server on loopback).
func (s *Server) checkHost(c *gin.Context) {
	if s.opts.BaseURL != "" || loopbackHost(c.Request.Host) {
		c.Next()
		return
	}
	s.fail(c, fhir.Invalid(fhir.IssueForbidden,
		"The Host '"+c.Request.Host+"' is not served here; the server answers loopback names unless started with --base-url",
		"不接受主机名 '"+c.Request.Host+"'；未设置 --base-url 时仅接受本机回环地址").WithStatus(http.StatusMisdirectedRequest))
}

// loopbackHost reports whether a Host header (host or host:port) is
// localhost or a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
