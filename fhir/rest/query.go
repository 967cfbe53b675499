package rest

import (
	"github.com/fmtbank/cmts/fhir/search"
	"github.com/gin-gonic/gin"
)

const queryKey = "cmts.query"

// queryOf returns the request's URL query, parsed once per request.
func queryOf(c *gin.Context) search.Query {
	if q, ok := c.Get(queryKey); ok {
		return q.(search.Query)
	}
	q := search.ParseQuery(c.Request.URL.RawQuery)
	c.Set(queryKey, q)
	return q
}

// param is the first value of a URL query parameter ("" when absent).
func param(c *gin.Context, name string) string { return queryOf(c).Values.Get(name) }
