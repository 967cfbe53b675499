package mongo

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// CountExportChunks counts the GridFS chunks of job's files (for tests).
func CountExportChunks(ctx context.Context, t testing.TB, g *GridFS, job string) int64 {
	t.Helper()
	n, err := g.bucket.GetChunksCollection().CountDocuments(ctx, bson.D{{Key: "files_id", Value: ofJob(job)}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
