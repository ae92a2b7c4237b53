package server

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/tools"
)

// agentTools adapts a tools.Toolbox to the agent's Toolbox interface.
type agentTools struct{ tb *tools.Toolbox }

var _ agent.Toolbox = agentTools{}

func (a agentTools) List(ctx context.Context) ([]agent.ToolSpec, []string, error) {
	list, warnings, err := a.tb.List(ctx)
	if err != nil {
		return nil, warnings, err
	}
	out := make([]agent.ToolSpec, len(list))
	for i, t := range list {
		out[i] = agent.ToolSpec{Name: t.Name, Description: t.Description, Parameters: t.InputSchema}
	}
	return out, warnings, nil
}

func (a agentTools) Call(ctx context.Context, name string, args json.RawMessage) (agent.ToolResult, error) {
	r, err := a.tb.Call(ctx, name, args)
	if err != nil {
		return agent.ToolResult{}, err
	}
	return agent.ToolResult{Text: r.Text, IsError: r.IsError}, nil
}

// notFoundAs names the missing resource in a db.ErrNotFound.
func notFoundAs(err error, what string) error {
	if errors.Is(err, db.ErrNotFound) {
		return errNotFound(what)
	}
	return err
}

func sortStrings(s []string) { sort.Strings(s) }

// rawOrEmpty renders a JSON document, or {} when there is none.
func rawOrEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(`{}`)
	}
	return raw
}
