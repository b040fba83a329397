//go:build tools

// Package tools records the control-plane commands this module builds, so that
// `go mod tidy` keeps every dependency they need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)
