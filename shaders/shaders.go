// Package shaders holds bt's WGSL compute kernels and the one mechanism that
// specialises them: tile sizes, workgroup sizes and expressions are written
// into the source text with text/template before compilation, from a typed
// spec per kernel (specs.go, gemm.go) that validates its fields. The templates carry structure that WGSL's override
// constants cannot: which bindings exist, which loop a mode runs, and the
// register tiles they unroll; and each specialisation is compiled to its
// own pipeline either way, so the few plain numbers (a convolution's kernel
// size) gain nothing from overrides either.
package shaders

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"
	"text/template"
)

//go:embed *.wgsl lib.tmpl
var files embed.FS

var funcs = template.FuncMap{
	// seq lists 0..n-1, for unrolling register tiles.
	"seq": func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		return s
	},
	"add": func(a, b int) int { return a + b },
	"mul": func(a, b int) int { return a * b },
	"div": func(a, b int) int { return a / b },
	"mod": func(a, b int) int { return a % b },
	// elem is the WGSL element type of the tensor named name: f16 where
	// halves lists it, else f32.
	"elem": func(halves []string, name string) string {
		if slices.Contains(halves, name) {
			return "f16"
		}
		return "f32"
	},
	// comp names component i of a vec4.
	"comp": func(i int) string { return string("xyzw"[i]) },
	// reduction is a Reduction for lib.tmpl's total: its function's
	// name, operation, type, columns, threads per column and whether it
	// sums in subgroups.
	"reduction": newReduction,
}

// Render returns the source of kernel name (the file name.wgsl) with spec
// filled in, once spec is valid. A key or field the template uses but spec
// lacks is an error.
func Render(name string, spec Specialisation) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("shaders: %s: %w", name, err)
	}
	src, err := files.ReadFile(name + ".wgsl")
	if err != nil {
		return "", fmt.Errorf("shaders: no kernel %q", name)
	}
	lib, err := files.ReadFile("lib.tmpl")
	if err != nil {
		return "", err
	}
	t, err := template.New("lib").Funcs(funcs).Option("missingkey=error").Parse(string(lib))
	if err != nil {
		return "", fmt.Errorf("shaders: lib.tmpl: %v", err)
	}
	if t, err = t.New(name).Parse(string(src)); err != nil {
		return "", fmt.Errorf("shaders: %s: %v", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, spec); err != nil {
		return "", fmt.Errorf("shaders: %s with %s: %v", name, spec.Key(), err)
	}
	return b.String(), nil
}

// Names lists the kernels in the package.
func Names() []string {
	ents, _ := files.ReadDir(".")
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".wgsl"); ok {
			names = append(names, name)
		}
	}
	return names
}
