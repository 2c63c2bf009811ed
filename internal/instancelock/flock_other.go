//go:build !unix

package instancelock

import "os"

// lock does nothing where flock is missing: Redoubt is deployed on Linux.
func lock(*os.File) (bool, error) { return false, nil }
