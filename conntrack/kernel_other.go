//go:build !linux

package conntrack

import "context"

// Kernel talks to the kernel's conntrack table; only on Linux.
type Kernel struct{}

// DialKernel fails: not supported on this OS.
func DialKernel() (*Kernel, error) { return nil, ErrUnsupported }

// Close does nothing.
func (k *Kernel) Close() error { return nil }

// Lookup fails: not supported on this OS.
func (k *Kernel) Lookup(Tuple) (Binding, error) { return Binding{}, ErrUnsupported }

// LabelsSize is the size of a conntrack entry's labels in bytes.
const LabelsSize = 16

// SetResized fails: not supported on this OS.
func (k *Kernel) SetResized(Tuple, [LabelsSize]byte) error { return ErrUnsupported }

// NewWatcher receives conntrack NEW events; only on Linux.
type NewWatcher struct{}

// ListenNew fails: not supported on this OS.
func ListenNew(mark uint32, fn func(Binding), lost func()) (*NewWatcher, error) {
	return nil, ErrUnsupported
}

// Run fails: not supported on this OS.
func (w *NewWatcher) Run(ctx context.Context) error { return ErrUnsupported }

// Sync does nothing.
func (w *NewWatcher) Sync() {}

// Close does nothing.
func (w *NewWatcher) Close() error { return nil }

// DestroyWatcher receives conntrack DESTROY events; only on Linux.
type DestroyWatcher struct{}

// ListenDestroy fails: not supported on this OS.
func ListenDestroy() (*DestroyWatcher, error) { return nil, ErrUnsupported }

// Run fails: not supported on this OS.
func (w *DestroyWatcher) Run(ctx context.Context, gone func(Tuple), lost func()) error {
	return ErrUnsupported
}

// Close does nothing.
func (w *DestroyWatcher) Close() error { return nil }
