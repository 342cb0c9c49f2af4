//go:build race

package journey

// raceEnabled: the race detector makes the runtime about ten times slower;
// the scale test runs fewer customers under it.
const raceEnabled = true
