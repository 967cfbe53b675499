package rest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fmtbank/cmts/fhir"
	"github.com/gin-gonic/gin"
)

// The Bulk Data status and file URLs, below the FHIR base.
const (
	exportStatusPath = "/$export-status"
	exportFilePath   = "/$export-file"
)

// exportKickoff starts an $export job (Bulk Data Access v2, kick-off
// request): 202 with the status URL in Content-Location.
func (s *Server) exportKickoff(c *gin.Context, typ, group string) {
	prefer := strings.ToLower(strings.Join(c.Request.Header.Values("Prefer"), ","))
	if !strings.Contains(prefer, "respond-async") {
		s.fail(c, fhir.Invalid(fhir.IssueRequired, "$export runs asynchronously: send Prefer: respond-async",
			"$export 为异步操作：请发送 Prefer: respond-async"))
		return
	}
	params, err := s.operationParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	level := "system"
	switch {
	case typ == "Patient":
		level = "Patient"
	case typ == "Group":
		level = "Group"
	}
	k := fhir.ExportKickoff{Level: level, Group: group, Params: params,
		Lenient: strings.Contains(prefer, "handling=lenient"), Request: s.base(c) + strings.TrimPrefix(c.Request.URL.RequestURI(), "/fhir")}
	job, err := s.opts.Export.Kickoff(c.Request.Context(), principal(c), k)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Location", s.base(c)+exportStatusPath+"/"+job)
	s.writeJSON(c, http.StatusAccepted, fhir.OperationOutcome([]fhir.Issue{{Severity: "information", Code: fhir.IssueInformation,
		Message: fhir.Message{EN: "The export has started; poll the Content-Location URL", ZH: "导出已开始；请轮询 Content-Location 地址"}}},
		fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))))
}

// exportStatus answers the status URL: 202 with X-Progress and Retry-After
// while the job runs, 200 with the manifest and Expires once it is done.
func (s *Server) exportStatus(c *gin.Context) {
	if s.opts.Export == nil {
		s.fail(c, errNoExport())
		return
	}
	st, err := s.opts.Export.Status(c.Request.Context(), principal(c), c.Param("job"), s.base(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if !st.Done {
		c.Header("X-Progress", st.Progress)
		c.Header("Retry-After", strconv.Itoa(int((st.RetryAfter+time.Second-1)/time.Second)))
		c.Status(http.StatusAccepted)
		return
	}
	if !st.Expires.IsZero() {
		c.Header("Expires", st.Expires.UTC().Format(http.TimeFormat))
	}
	c.Data(http.StatusOK, mimeJSON, st.Manifest)
}

// exportCancel cancels a job: 202, and the status URL answers 404 after.
func (s *Server) exportCancel(c *gin.Context) {
	if s.opts.Export == nil {
		s.fail(c, errNoExport())
		return
	}
	if err := s.opts.Export.Cancel(c.Request.Context(), principal(c), c.Param("job")); err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusAccepted, fhir.OperationOutcome([]fhir.Issue{{Severity: "information", Code: fhir.IssueInformation,
		Message: fhir.Message{EN: "The export was cancelled", ZH: "导出已取消"}}}, fhir.NegotiateLanguage(c.GetHeader("Accept-Language"))))
}

// exportFile streams one NDJSON output file of a completed job.
func (s *Server) exportFile(c *gin.Context) {
	if s.opts.Export == nil {
		s.fail(c, errNoExport())
		return
	}
	f, err := s.opts.Export.Open(c.Request.Context(), principal(c), c.Param("job"), c.Param("file"))
	if err != nil {
		s.fail(c, err)
		return
	}
	defer f.Close()
	c.Header("Content-Type", "application/fhir+ndjson")
	c.Status(http.StatusOK)
	// A file may take longer than the server's write timeout: the deadline
	// moves on with every chunk written, so only a client that stops
	// reading is cut off.
	rc := http.NewResponseController(c.Writer)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := c.Writer.Write(buf[:n]); err != nil {
				// The status is out; the client sees a cut stream.
				s.opts.Logger.Info("export download cut", "err", err)
				return
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			s.opts.Logger.Error("export file unreadable", "err", rerr)
			return
		}
	}
}

// errNoExport answers the status and file URLs of a server without exports.
func errNoExport() *fhir.Error {
	return fhir.Invalid(fhir.IssueNotSupported, "This server does not run Bulk Data exports", "本服务器不提供批量数据导出").
		WithStatus(http.StatusNotFound)
}
