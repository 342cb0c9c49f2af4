package profile

// Waiters counts the WaitApplied calls waiting.
func Waiters(en *Engine) int {
	en.mu.RLock()
	defer en.mu.RUnlock()
	return len(en.waiters)
}
