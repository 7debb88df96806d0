//go:build !linux

package rules

// Manager is not supported outside Linux; every method returns
// ErrNotSupported.
type Manager struct{}

// New returns ErrNotSupported (after validating cfg).
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, ErrNotSupported
}

// Install returns ErrNotSupported.
func (m *Manager) Install() error { return ErrNotSupported }

// Remove returns ErrNotSupported.
func (m *Manager) Remove() error { return ErrNotSupported }

// Open returns ErrNotSupported.
func (m *Manager) Open(h Hole) error { return ErrNotSupported }

// Close returns ErrNotSupported.
func (m *Manager) Close(h Hole) error { return ErrNotSupported }

// Shutdown returns ErrNotSupported.
func (m *Manager) Shutdown() error { return ErrNotSupported }

// Hold returns ErrNotSupported.
func (m *Manager) Hold(flows ...Flow) error { return ErrNotSupported }

// Release returns ErrNotSupported.
func (m *Manager) Release(flows ...Flow) error { return ErrNotSupported }

// Holes returns ErrNotSupported.
func (m *Manager) Holes() ([]Hole, error) { return nil, ErrNotSupported }

// Left is what an earlier run left that Reconcile kept.
type Left struct {
	Holes   []Hole
	Held    []Flow
	Removed int
}

// Reconcile returns ErrNotSupported.
func (m *Manager) Reconcile(alive func(Flow) bool) (Left, error) { return Left{}, ErrNotSupported }
