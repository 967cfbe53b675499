package mongo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fmtbank/cmts/fhir/export"
)

// exportBucket is the GridFS bucket of the $export files (collections
// export.files and export.chunks).
const exportBucket = "export"

// GridFS keeps the Bulk Data $export files in a GridFS bucket of the
// store's database, so that every instance on the database serves every
// job's files. A file is named job/name; its id is that name and a random
// suffix, so that the chunks a writer that died left behind (they have no
// files document) are found by their job all the same.
type GridFS struct {
	bucket *mongodrv.GridFSBucket
}

var _ export.Files = (*GridFS)(nil)

// ExportFiles is the store's place for the $export files.
func (s *Store) ExportFiles() *GridFS {
	return &GridFS{bucket: s.versions.Database().GridFSBucket(options.GridFSBucket().SetName(exportBucket))}
}

func gridName(job, name string) string { return job + "/" + name }

// ofJob matches the ids of job's files.
func ofJob(job string) bson.Regex {
	return bson.Regex{Pattern: "^" + regexp.QuoteMeta(job+"/")}
}

// Create implements export.Files: the files document is written by Close,
// after every chunk, and older files of the name are removed then.
func (g *GridFS) Create(ctx context.Context, job, name string) (io.WriteCloser, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	filename := gridName(job, name)
	id := filename + "/" + hex.EncodeToString(b)
	up, err := g.bucket.OpenUploadStreamWithID(ctx, id, filename)
	if err != nil {
		return nil, translate(ctx, "gridfs create", err)
	}
	return &gridFile{ctx: ctx, g: g, up: up, id: id, filename: filename}, nil
}

type gridFile struct {
	ctx          context.Context
	g            *GridFS
	up           *mongodrv.GridFSUploadStream
	id, filename string
}

func (f *gridFile) Write(b []byte) (int, error) {
	n, err := f.up.Write(b)
	if err != nil {
		err = translate(f.ctx, "gridfs write", err)
	}
	return n, err
}

func (f *gridFile) Close() error {
	if err := f.up.Close(); err != nil {
		return translate(f.ctx, "gridfs close", err)
	}
	// The earlier files of this name (a job taken up after a restart
	// writes its files again).
	cur, err := f.g.bucket.Find(f.ctx, bson.D{{Key: "filename", Value: f.filename}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: f.id}}}})
	if err != nil {
		return translate(f.ctx, "gridfs find", err)
	}
	var old []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(f.ctx, &old); err != nil {
		return translate(f.ctx, "gridfs find", err)
	}
	for _, o := range old {
		if err := f.g.bucket.Delete(f.ctx, o.ID); err != nil && !errors.Is(err, mongodrv.ErrFileNotFound) {
			return translate(f.ctx, "gridfs delete", err)
		}
	}
	return nil
}

// Open implements export.Files.
func (g *GridFS) Open(ctx context.Context, job, name string) (io.ReadCloser, error) {
	down, err := g.bucket.OpenDownloadStreamByName(ctx, gridName(job, name))
	if errors.Is(err, mongodrv.ErrFileNotFound) {
		return nil, export.ErrNoFile
	}
	if err != nil {
		return nil, translate(ctx, "gridfs open", err)
	}
	return down, nil
}

// Remove implements export.Files: the files documents, then every chunk
// of the job, those of files never completed included.
func (g *GridFS) Remove(ctx context.Context, job string) error {
	if _, err := g.bucket.GetFilesCollection().DeleteMany(ctx, bson.D{{Key: "_id", Value: ofJob(job)}}); err != nil {
		return translate(ctx, "gridfs remove", err)
	}
	if _, err := g.bucket.GetChunksCollection().DeleteMany(ctx, bson.D{{Key: "files_id", Value: ofJob(job)}}); err != nil {
		return translate(ctx, "gridfs remove", err)
	}
	return nil
}
