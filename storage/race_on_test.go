//go:build race

package storage_test

// raceDetector tells the tests that the race detector is on: SQLite (C
// translated to Go) then runs about 20 times slower, so the tests that
// repeat work only for numbers (rounds, steps) repeat less, and keep their
// full count in the run without it.
const raceDetector = true
