// Package fhir is the FHIR model as the server sees it: the R4 codec (parsing
// and validation by google/fhir/go), the errors that carry FHIR meaning, and
// their one mapping to HTTP status plus OperationOutcome.
package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/fmtbank/cmts/store"
	"golang.org/x/text/language"
)

// IssueType is an OperationOutcome.issue.code (http://hl7.org/fhir/issue-type).
type IssueType string

// The issue types the server reports.
const (
	IssueInvalid      IssueType = "invalid"
	IssueStructure    IssueType = "structure"
	IssueRequired     IssueType = "required"
	IssueValue        IssueType = "value"
	IssueInvariant    IssueType = "invariant"
	IssueNotFound     IssueType = "not-found"
	IssueDeleted      IssueType = "deleted"
	IssueConflict     IssueType = "conflict"
	IssueDuplicate    IssueType = "duplicate"
	IssueForbidden    IssueType = "forbidden"
	IssueLogin        IssueType = "login"
	IssueTooLong      IssueType = "too-long"
	IssueNotSupported IssueType = "not-supported"
	IssueTransient    IssueType = "transient"
	IssueException    IssueType = "exception"
	IssueProcessing   IssueType = "processing"
	IssueInformation  IssueType = "informational"
	IssueTooCostly    IssueType = "too-costly"
	IssueCodeInvalid  IssueType = "code-invalid"
	IssueBusinessRule IssueType = "business-rule"
	IssueThrottled    IssueType = "throttled"
)

// Message is a text in both languages the server speaks.
type Message struct {
	EN string
	ZH string
}

// Issue is one problem found in a request: a message, the element it concerns
// (FHIRPath, when known) and diagnostics (English, from the parser).
type Issue struct {
	Severity    string // fatal, error, warning, information; "" means error
	Code        IssueType
	Message     Message
	Diagnostics string
	Expression  []string
}

// Error is an error with FHIR meaning: the HTTP status it answers with and the
// issues of its OperationOutcome. Construct it with the functions below.
type Error struct {
	Status int
	Issues []Issue
	// Cause is kept for logs and errors.Is; clients never see its text.
	Cause error
	// RetryAfter, when set, is answered as Retry-After (whole seconds).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return http.StatusText(e.Status)
	}
	msg := e.Issues[0].Message.EN
	if d := e.Issues[0].Diagnostics; d != "" {
		msg += ": " + d
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

func newError(status int, code IssueType, en, zh string) *Error {
	return &Error{Status: status, Issues: []Issue{{Code: code, Message: Message{EN: en, ZH: zh}}}}
}

// WithDiagnostics adds diagnostics to the first issue.
func (e *Error) WithDiagnostics(d string) *Error {
	if len(e.Issues) > 0 {
		e.Issues[0].Diagnostics = d
	}
	return e
}

// WithExpression names the element the first issue concerns.
func (e *Error) WithExpression(expr ...string) *Error {
	if len(e.Issues) > 0 {
		e.Issues[0].Expression = expr
	}
	return e
}

// NotFound: the resource does not exist (or is not visible to the caller).
func NotFound(typ, id string) *Error {
	return newError(http.StatusNotFound, IssueNotFound,
		"Resource "+typ+"/"+id+" is not known", "资源 "+typ+"/"+id+" 不存在")
}

// VersionNotFound: the resource exists but not that version.
func VersionNotFound(typ, id, vid string) *Error {
	return newError(http.StatusNotFound, IssueNotFound,
		"Version "+vid+" of "+typ+"/"+id+" is not known", "资源 "+typ+"/"+id+" 没有版本 "+vid)
}

// UnknownType: the URL names no R4 resource type.
func UnknownType(typ string) *Error {
	return newError(http.StatusNotFound, IssueNotSupported,
		"Unknown resource type '"+typ+"'", "未知的资源类型 '"+typ+"'")
}

// Gone: the resource was deleted.
func Gone(typ, id string) *Error {
	return newError(http.StatusGone, IssueDeleted,
		"Resource "+typ+"/"+id+" has been deleted", "资源 "+typ+"/"+id+" 已被删除")
}

// Conflict: another write got there first.
func Conflict(en, zh string) *Error { return newError(http.StatusConflict, IssueConflict, en, zh) }

// PreconditionFailed: If-Match or a conditional interaction did not hold.
func PreconditionFailed(en, zh string) *Error {
	return newError(http.StatusPreconditionFailed, IssueConflict, en, zh)
}

// Invalid: the request is malformed (400).
func Invalid(code IssueType, en, zh string) *Error {
	return newError(http.StatusBadRequest, code, en, zh)
}

// Unprocessable: the resource is well-formed JSON but not valid FHIR (422).
func Unprocessable(code IssueType, en, zh string) *Error {
	return newError(http.StatusUnprocessableEntity, code, en, zh)
}

// TooLarge: the body is over the configured limit.
func TooLarge(limit int64) *Error {
	return newError(http.StatusRequestEntityTooLarge, IssueTooLong,
		"The request body is larger than the limit", "请求体超过大小限制").
		WithDiagnostics("limit " + itoa(limit) + " bytes")
}

// UnsupportedMediaType: the body's Content-Type is not one we read here;
// accepted names what this interaction reads (application/fhir+json if none).
func UnsupportedMediaType(ct string, accepted ...string) *Error {
	if len(accepted) == 0 {
		accepted = []string{"application/fhir+json"}
	}
	want := strings.Join(accepted, " or ")
	return newError(http.StatusUnsupportedMediaType, IssueNotSupported,
		"Unsupported content type '"+ct+"'; send "+want, "不支持的内容类型 '"+ct+"'，请使用 "+want)
}

// NotAcceptable: the client asked for a format we do not write.
func NotAcceptable(format string) *Error {
	return newError(http.StatusNotAcceptable, IssueNotSupported,
		"Format '"+format+"' is not supported; this server speaks application/fhir+json", "不支持的格式 '"+format+"'，本服务器仅支持 application/fhir+json")
}

// MethodNotAllowed: the interaction does not exist at this URL.
func MethodNotAllowed(method, path string) *Error {
	return newError(http.StatusMethodNotAllowed, IssueNotSupported,
		"Method "+method+" is not allowed on "+path, "路径 "+path+" 不支持 "+method+" 方法")
}

// Forbidden: the caller may not do this.
func Forbidden(en, zh string) *Error { return newError(http.StatusForbidden, IssueForbidden, en, zh) }

// Unauthorized: no valid credentials.
func Unauthorized(en, zh string) *Error { return newError(http.StatusUnauthorized, IssueLogin, en, zh) }

// Unavailable: the database is out of reach; try again later.
func Unavailable() *Error {
	return newError(http.StatusServiceUnavailable, IssueTransient,
		"The database is unavailable; try again later", "数据库暂时不可用，请稍后重试")
}

// TooManyEntries: a batch or transaction has more entries than the limit.
func TooManyEntries(limit int) *Error {
	return newError(http.StatusRequestEntityTooLarge, IssueTooCostly,
		"The Bundle has more entries than the limit of "+itoa(int64(limit)), "Bundle 的条目数超过上限 "+itoa(int64(limit))).
		WithExpression("Bundle.entry")
}

// Busy: the server is at its bound of concurrent requests; the client may
// retry after a moment.
func Busy() *Error {
	return newError(http.StatusServiceUnavailable, IssueTransient,
		"The server is busy; try again shortly", "服务器繁忙，请稍后重试")
}

// NotSupported: a feature this server does not offer (yet).
func NotSupported(en, zh string) *Error {
	return newError(http.StatusNotImplemented, IssueNotSupported, en, zh)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// AsError gives any error its FHIR meaning: store errors become their FHIR
// counterparts, anything unknown an internal error (500) whose text the client
// never sees.
func AsError(err error) *Error {
	var fe *Error
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		e := Unavailable()
		e.Cause = err
		return e
	case errors.Is(err, store.ErrConflict):
		e := Conflict("The resource was changed by another request; read it again and retry", "资源已被其他请求修改，请重新读取后再试")
		e.Cause = err
		return e
	case errors.Is(err, store.ErrNotFound):
		e := newError(http.StatusNotFound, IssueNotFound, "Not found", "未找到")
		e.Cause = err
		return e
	case errors.Is(err, store.ErrInvalidQuery):
		e := Invalid(IssueNotSupported, "The search cannot be evaluated", "无法执行该检索")
		e.Cause = err
		return e
	}
	e := newError(http.StatusInternalServerError, IssueException, "Internal server error", "服务器内部错误")
	e.Cause = err
	return e
}

// Language is the language of the texts we write for a client.
type Language int

// The languages we write.
const (
	English Language = iota
	Chinese
)

var langMatcher = language.NewMatcher([]language.Tag{language.English, language.SimplifiedChinese})

// NegotiateLanguage picks English or Chinese from an Accept-Language header.
func NegotiateLanguage(acceptLanguage string) Language {
	if acceptLanguage == "" {
		return English
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return English
	}
	_, idx, _ := langMatcher.Match(tags...)
	if idx == 1 {
		return Chinese
	}
	return English
}

// Text picks the message in the language.
func (m Message) Text(l Language) string {
	if l == Chinese && m.ZH != "" {
		return m.ZH
	}
	return m.EN
}

// OperationOutcome renders issues as an R4 OperationOutcome, details.text in
// the chosen language.
func OperationOutcome(issues []Issue, l Language) []byte {
	type details struct {
		Text string `json:"text,omitempty"`
	}
	type issue struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Details     *details `json:"details,omitempty"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	type outcome struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}
	o := outcome{ResourceType: "OperationOutcome"}
	for _, is := range issues {
		sev := is.Severity
		if sev == "" {
			sev = "error"
		}
		code := is.Code
		if code == "" {
			code = IssueProcessing
		}
		text := is.Message.Text(l)
		var d *details
		if text != "" {
			d = &details{Text: text}
		}
		o.Issue = append(o.Issue, issue{Severity: sev, Code: string(code), Details: d, Diagnostics: is.Diagnostics, Expression: is.Expression})
	}
	b, _ := json.Marshal(o)
	return b
}

// WithStatus overrides the HTTP status.
func (e *Error) WithStatus(status int) *Error {
	e.Status = status
	return e
}
