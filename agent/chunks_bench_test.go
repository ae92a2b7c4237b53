package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/agentgate/agentgate/agent/llmtest"
)

// The chunk decoders compared by BenchmarkDecodeChunk; only chunkDecoder is product code.
var chunkDecoders = map[string]func() func(data []byte, c *chunk) error{
	// chunkDecoder: the single-pass scanner Complete uses.
	"scanner": func() func([]byte, *chunk) error {
		var d chunkDecoder
		return d.decode
	},
	// encoding/json into a struct of only the fields Complete uses.
	"encoding-json": func() func([]byte, *chunk) error {
		return decodeStdlib
	},
	// gjson: validate, look for "error", then walk the members.
	"gjson": func() func([]byte, *chunk) error {
		return decodeGJSON
	},
	// What Complete did through ssestream: gjson's "error" check, then json.Unmarshal into
	// openai.ChatCompletionChunk (apijson, by reflection).
	"openai-go": func() func([]byte, *chunk) error {
		return func(data []byte, c *chunk) error {
			if gjson.GetBytes(data, "error").Exists() {
				return errHasError
			}
			var oc openai.ChatCompletionChunk
			if err := json.Unmarshal(data, &oc); err != nil {
				return errInvalidChunk
			}
			*c = fromOpenAI(&oc)
			return nil
		}
	},
}

type stdChunk struct {
	Error   json.RawMessage `json:"error"`
	Choices []struct {
		Index int64 `json:"index"`
		Delta struct {
			Content   string `json:"content"`
			ToolCalls []struct {
				Index    int64  `json:"index"`
				ID       string `json:"id"`
				Type     string `json:"type"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

func decodeStdlib(data []byte, c *chunk) error {
	var sc stdChunk
	if err := json.Unmarshal(data, &sc); err != nil {
		return errInvalidChunk
	}
	if sc.Error != nil {
		return errHasError
	}
	*c = chunk{choices: c.choices[:0]}
	if sc.Usage != nil {
		c.usageValid = true
		c.usage = tokenUsage{sc.Usage.PromptTokens, sc.Usage.CompletionTokens}
	}
	for _, ch := range sc.Choices {
		cd := c.addChoice()
		cd.index, cd.content, cd.finishReason = ch.Index, ch.Delta.Content, ch.FinishReason
		for _, tc := range ch.Delta.ToolCalls {
			cd.toolCalls = append(cd.toolCalls, toolCallDelta{tc.Index, tc.ID, tc.Type, tc.Function.Name, tc.Function.Arguments})
		}
	}
	return nil
}

func decodeGJSON(data []byte, c *chunk) error {
	if !gjson.ValidBytes(data) {
		return errInvalidChunk
	}
	if gjson.GetBytes(data, "error").Exists() {
		return errHasError
	}
	*c = chunk{choices: c.choices[:0]}
	// Zero-copy view; strings kept past this event are cloned.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(data), len(data)))
	if !root.IsObject() {
		if root.Type == gjson.Null {
			return nil
		}
		return errInvalidChunk
	}
	var seenChoices, seenUsage bool
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "choices":
			if seenChoices {
				return true
			}
			seenChoices = true
			if !v.IsArray() {
				return true
			}
			whole := true
			v.ForEach(func(_, e gjson.Result) bool {
				if e.Type == gjson.Null {
					c.addChoice()
					return true
				}
				if !e.IsObject() {
					whole = false
					return false
				}
				ch := c.addChoice()
				ch.index = e.Get("index").Int()
				ch.finishReason = strings.Clone(e.Get("finish_reason").String())
				d := e.Get("delta")
				if !d.IsObject() {
					return true
				}
				ch.content = strings.Clone(d.Get("content").String())
				if tcs := d.Get("tool_calls"); tcs.IsArray() {
					tcs.ForEach(func(_, t gjson.Result) bool {
						f := t.Get("function")
						ch.toolCalls = append(ch.toolCalls, toolCallDelta{
							index:     t.Get("index").Int(),
							id:        strings.Clone(t.Get("id").String()),
							typ:       strings.Clone(t.Get("type").String()),
							name:      strings.Clone(f.Get("name").String()),
							arguments: strings.Clone(f.Get("arguments").String()),
						})
						return true
					})
				}
				return true
			})
			if !whole {
				c.choices = c.choices[:0]
			}
		case "usage":
			if seenUsage {
				return true
			}
			seenUsage = true
			if v.IsObject() {
				c.usageValid = true
				c.usage = tokenUsage{v.Get("prompt_tokens").Int(), v.Get("completion_tokens").Int()}
			}
		}
		return true
	})
	return nil
}

// BenchmarkDecodeChunk decodes realistic chunks with each candidate decoder.
func BenchmarkDecodeChunk(b *testing.B) {
	for _, kind := range []struct{ name, data string }{
		{"content", chunkContent},
		{"tool-args", chunkToolArgs},
		{"usage", chunkUsage},
	} {
		for _, name := range []string{"scanner", "encoding-json", "gjson", "openai-go"} {
			b.Run(kind.name+"/"+name, func(b *testing.B) {
				decode := chunkDecoders[name]()
				data := []byte(kind.data)
				var c chunk
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := decode(data, &c); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestDecoderCandidates records how the other candidates of BenchmarkDecodeChunk read the
// fuzz seeds compared with openai-go (the reference): the scanner must agree on every seed;
// the others are reported, not required (they are not product code).
func TestDecoderCandidates(t *testing.T) {
	t.Parallel()
	ref := chunkDecoders["openai-go"]()
	for _, name := range []string{"scanner", "encoding-json", "gjson"} {
		decode := chunkDecoders[name]()
		var differ []string
		for _, seed := range seedChunks {
			var want, got chunk
			wantErr := ref([]byte(seed), &want)
			err := decode([]byte(seed), &got)
			if (err == nil) != (wantErr == nil) || err == nil && !reflect.DeepEqual(normalize(got), normalize(want)) {
				differ = append(differ, seed)
			}
		}
		if name == "scanner" && len(differ) > 0 {
			t.Errorf("scanner differs from openai-go on %q", differ)
		}
		t.Logf("%s differs from openai-go on %d of %d seeds", name, len(differ), len(seedChunks))
	}
}

// completeOpenAIGo is Complete as it was before chunks.go (openai-go's NewStreaming and
// ssestream), kept here only to benchmark against; errors are returned unmapped.
func completeOpenAIGo(ctx context.Context, chat *openai.ChatCompletionService, req Request, onDelta func(string)) (Response, error) {
	s := chat.NewStreaming(ctx, sdkParams(req))
	defer s.Close()
	var (
		resp      Response
		content   strings.Builder
		calls     callAssembler
		deltas    int64
		usageSeen bool
	)
	for s.Next() {
		c := s.Current()
		if c.JSON.Usage.Valid() {
			resp.TokensInput, resp.TokensOutput, usageSeen = c.Usage.PromptTokens, c.Usage.CompletionTokens, true
		}
		for i := range c.Choices {
			ch := &c.Choices[i]
			if ch.Index != 0 {
				continue
			}
			if d := ch.Delta.Content; d != "" {
				content.WriteString(d)
				deltas++
				if onDelta != nil {
					onDelta(d)
				}
			}
			for _, tc := range ch.Delta.ToolCalls {
				if calls.add(&toolCallDelta{tc.Index, tc.ID, tc.Type, tc.Function.Name, tc.Function.Arguments}) {
					deltas++
				}
			}
			if ch.FinishReason != "" {
				resp.FinishReason = ch.FinishReason
			}
		}
	}
	resp.Content = content.String()
	resp.ToolCalls = calls.result()
	if !usageSeen {
		resp.TokensInput, resp.TokensOutput = estimateInputTokens(&req), deltas
	}
	return resp, s.Err()
}

// BenchmarkCompletePaths runs one 20-chunk answer (role, 20 content deltas, finish, usage,
// [DONE]) through the scripted server: "http" only posts and discards the body (the floor:
// the request, the in-process server and the transport), "openai-go" is the old decoding,
// "chunks" is Complete.
func BenchmarkCompletePaths(b *testing.B) {
	text := strings.TrimSpace(strings.Repeat("token ", 20))
	s := llmtest.New(b, llmtest.WithoutRecording())
	s.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: text} })
	hc := NewHTTPClient()
	b.Cleanup(hc.CloseIdleConnections)
	ms := NewModels(DefaultProviders(), ModelOptions{HTTPClient: hc})
	model, err := ms.For(ProviderCustom, s.URL(), "sk-test")
	if err != nil {
		b.Fatal(err)
	}
	m := model.(*openAIModel)
	chat := openai.NewChatCompletionService(m.client.Options...)
	req := Request{Model: "gpt-4o-mini", Messages: []Message{{Role: RoleSystem, Content: "sys"}, {Role: RoleUser, Content: "go"}}}
	ctx := context.Background()
	check := func(b *testing.B, resp Response, err error) {
		if err != nil || resp.TokensOutput != 20 || resp.FinishReason != "stop" {
			b.Fatal(resp, err)
		}
	}
	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r *http.Response
			if err := m.client.Post(ctx, "chat/completions", sdkParams(req), &r, option.WithJSONSet("stream", true)); err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
		}
	})
	b.Run("openai-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := completeOpenAIGo(ctx, &chat, req, func(string) {})
			check(b, resp, err)
		}
	})
	b.Run("chunks", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := m.Complete(ctx, req, func(string) {})
			check(b, resp, err)
		}
	})
}

// BenchmarkOpenStreams measures the memory one open stream holds in this process: it opens
// 200 streams that stay open after their first content delta, against the scripted server
// run in a child process, and reports the growth of heap and stacks after GCs per stream
// as "B/stream" (and its heap and stack parts). "http" holds the response unread (the floor: openai-go's request and
// net/http's connection), "openai-go" is the old decoding, "chunks" is Complete.
func BenchmarkOpenStreams(b *testing.B) {
	const n = 200
	url := startServerProcess(b)
	hc := NewHTTPClient()
	b.Cleanup(hc.CloseIdleConnections)
	model, err := NewModels(DefaultProviders(), ModelOptions{HTTPClient: hc}).For(ProviderCustom, url, "sk-test")
	if err != nil {
		b.Fatal(err)
	}
	m := model.(*openAIModel)
	chat := openai.NewChatCompletionService(m.client.Options...)
	req := Request{Model: "gpt-4o-mini", Messages: []Message{{Role: RoleUser, Content: "go"}}}
	paths := map[string]func(ctx context.Context, delta func(string)){
		"http": func(ctx context.Context, delta func(string)) {
			var r *http.Response
			if err := m.client.Post(ctx, "chat/completions", sdkParams(req), &r, option.WithJSONSet("stream", true)); err != nil {
				return
			}
			defer r.Body.Close()
			delta("")
			var buf [64]byte
			for {
				if _, err := r.Body.Read(buf[:]); err != nil {
					return
				}
			}
		},
		"openai-go": func(ctx context.Context, delta func(string)) { _, _ = completeOpenAIGo(ctx, &chat, req, delta) },
		"chunks":    func(ctx context.Context, delta func(string)) { _, _ = m.Complete(ctx, req, delta) },
	}
	for _, name := range []string{"http", "openai-go", "chunks"} {
		b.Run(name, func(b *testing.B) {
			var heap, stack float64
			runs := 0
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				ctx, cancel := context.WithCancel(context.Background())
				var open, done sync.WaitGroup
				for range n {
					open.Add(1)
					done.Add(1)
					go func() {
						defer done.Done()
						var once sync.Once
						paths[name](ctx, func(string) { once.Do(open.Done) })
					}()
				}
				open.Wait()
				for range 4 { // each GC may halve a stack that grew during the request
					runtime.GC()
				}
				runtime.ReadMemStats(&after)
				cancel()
				done.Wait()
				heap += float64(after.HeapInuse) - float64(before.HeapInuse)
				stack += float64(after.StackInuse) - float64(before.StackInuse)
				runs++
			}
			b.ReportMetric((heap+stack)/float64(runs*n), "B/stream")
			b.ReportMetric(heap/float64(runs*n), "heap-B/stream")
			b.ReportMetric(stack/float64(runs*n), "stack-B/stream")
		})
	}
}

// startServerProcess runs TestServerProcess in a child process and returns its URL; the
// child ends when the benchmark does (its stdin closes).
func startServerProcess(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerProcess$")
	cmd.Env = append(os.Environ(), "AGENT_SERVER_PROCESS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "URL ")
	if err != nil || !ok {
		tb.Fatalf("server process said %q: %v", line, err)
	}
	return url
}

// TestServerProcess is BenchmarkOpenStreams's upstream, in its own process: a scripted
// server whose replies send one delta and stay open. It prints its URL and serves until its
// stdin closes.
func TestServerProcess(t *testing.T) {
	if os.Getenv("AGENT_SERVER_PROCESS") != "1" {
		t.Skip("the upstream process of BenchmarkOpenStreams")
	}
	s, err := llmtest.Start("127.0.0.1:0", func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "first", Hang: true}
	}, llmtest.WithoutRecording())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("URL " + s.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
}
