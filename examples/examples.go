// Package examples holds the journeys nudge ships with, embedded in the
// binary so that "nudge serve" runs them wherever it is started.
package examples

import "embed"

// Journeys is the directory journeys/ of this package: one YAML file a
// journey (welcome, abandoned cart, high intent, re-engagement, loyalty).
//
//go:embed journeys/*.yaml
var Journeys embed.FS
