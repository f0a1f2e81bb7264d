// Package migrations holds floodtune's versioned database schema: one folder
// per dialect (postgres/, sqlite/), each with NNN_name.up.sql and
// NNN_name.down.sql files, embedded in the binary. storage applies them in
// order, each in its own transaction, and records each version it applied.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS
