package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoKernel is wrapped by the error of [FindKernel] when it finds no kernel
// of the version asked for.
var ErrNoKernel = errors.New("no LUO test kernel")

// FindKernel returns the path of a test kernel with Live Update support, for
// version "7.2" or "7.3". It looks, in order, at:
//
//   - $LUO_TEST_KERNEL (7.2 only) or $LUO_TEST_KERNEL_7_3 (7_2, ... by version);
//   - ../shared/vm/bzImage (7.2) or ../shared/vm/bzImage-<version>, next to
//     the root of the module of the current directory or of any module
//     enclosing it;
//   - <module root>/.cache/kernel/<version>/bzImage, where
//     scripts/build-kernel.sh puts it.
//
// Without a kernel its error wraps [ErrNoKernel] and says where it looked and
// how to get one. A variable naming a missing file is another error.
func FindKernel(version string) (string, error) {
	path, tried, err := findKernel(version)
	if err != nil {
		return "", err
	}
	if path == "" {
		return "", fmt.Errorf("vm: %w %s (looked at %s); build it into .cache/kernel with scripts/build-kernel.sh %s (or make kernel), or set $%s to a bzImage with LUO",
			ErrNoKernel, version, strings.Join(tried, ", "), version, kernelEnv(version)[0])
	}
	return path, nil
}

// kernelEnv returns the environment variables naming a kernel of version.
func kernelEnv(version string) []string {
	env := []string{"LUO_TEST_KERNEL_" + strings.ReplaceAll(version, ".", "_")}
	if version == "7.2" {
		env = append([]string{"LUO_TEST_KERNEL"}, env...)
	}
	return env
}

// findKernel returns the kernel FindKernel would use, or "" and the places it
// looked at. A variable naming a missing file is an error.
func findKernel(version string) (path string, tried []string, err error) {
	for _, env := range kernelEnv(version) {
		if p := os.Getenv(env); p != "" {
			if _, err := os.Stat(p); err != nil {
				return "", nil, fmt.Errorf("vm: $%s: %w", env, err)
			}
			return p, nil, nil
		}
		tried = append(tried, "$"+env)
	}
	shared := "bzImage"
	if version != "7.2" {
		shared = "bzImage-" + version
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "", nil, fmt.Errorf("vm: find kernel: %w", err)
	}
	// Try every enclosing module, nearest first, so that a suite in a
	// nested module finds the kernels of the main one.
	for dir := cwd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			for _, p := range []string{
				filepath.Join(dir, "..", "shared", "vm", shared),
				filepath.Join(dir, ".cache", "kernel", version, "bzImage"),
			} {
				if _, err := os.Stat(p); err == nil {
					return filepath.Clean(p), nil, nil
				}
				tried = append(tried, filepath.Clean(p))
			}
		}
		if filepath.Dir(dir) == dir {
			return "", tried, nil
		}
	}
}
