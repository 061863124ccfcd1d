package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
)

// celCostLimit bounds the work one condition may do on one predicate.
const celCostLimit = 1_000_000

// formatCost charges string.format by the size of what it makes: cel-go charges it by the size of
// the format string only, so nested formats over a predicate could allocate hundreds of MiB within the
// cost limit. At a quarter per byte, a condition makes at most about 4 MB of formatted text.
var formatCost = cel.CostTrackerOptions(interpreter.OverloadCostTracker("string_format",
	func(_ []ref.Val, result ref.Val) *uint64 {
		s, ok := result.(types.String)
		if !ok {
			return nil
		}
		cost := uint64(len(s))/4 + 1
		return &cost
	}))

// Attestation is a required attestation with compiled conditions.
type Attestation struct {
	Name          string
	PredicateType string
	Conditions    []Condition
}

// Condition is one compiled CEL expression over `predicate`.
type Condition struct {
	Source  string
	program cel.Program
}

type fieldError struct {
	field string
	err   error
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("predicate", cel.DynType),
		ext.Strings(), ext.Lists(), ext.Sets(), ext.Encoders(),
	)
}

func compileAttestation(a sigwatchv1alpha1.Attestation) (*Attestation, *fieldError) {
	if a.PredicateType == "" {
		return nil, &fieldError{"predicateType", errors.New("required")}
	}
	out := &Attestation{Name: a.Name, PredicateType: a.PredicateType}
	if len(a.Conditions) == 0 {
		return out, nil
	}
	env, err := newEnv()
	if err != nil {
		return nil, &fieldError{"conditions", err}
	}
	for i, src := range a.Conditions {
		ast, iss := env.Compile(src)
		if iss.Err() != nil {
			return nil, &fieldError{fmt.Sprintf("conditions[%d]", i), iss.Err()}
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			return nil, &fieldError{fmt.Sprintf("conditions[%d]", i), fmt.Errorf("must be a boolean expression, is %s", ast.OutputType())}
		}
		prg, err := env.Program(ast, cel.CostLimit(celCostLimit), cel.InterruptCheckFrequency(100), formatCost)
		if err != nil {
			return nil, &fieldError{fmt.Sprintf("conditions[%d]", i), err}
		}
		out.Conditions = append(out.Conditions, Condition{Source: src, program: prg})
	}
	return out, nil
}

// Eval evaluates the condition on a predicate decoded from JSON. An error (a missing field, a type
// mismatch, the cost limit) counts as false for the verdict; the error says why.
func (c Condition) Eval(ctx context.Context, predicate any) (bool, error) {
	out, _, err := c.program.ContextEval(ctx, map[string]any{"predicate": predicate})
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", c.Source, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("condition %q returned %v, not a boolean", c.Source, out.Value())
	}
	return b, nil
}
