package workspace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bulkhead-dev/bulkhead/agent"
	"github.com/bulkhead-dev/bulkhead/embed"
	"github.com/bulkhead-dev/bulkhead/memory"
	"github.com/bulkhead-dev/bulkhead/netguard"
)

// AgentOptions configure how a Service runs agents. Everything here is host
// configuration: nothing a run sends can change it.
type AgentOptions struct {
	// Guard makes the provider HTTP clients and checks their base URLs;
	// nil means a strict guard (public addresses only).
	Guard *netguard.Guard
	// Environ is where provider key pools (<P>_API_KEYS, <P>_API_KEY,
	// <P>_API_KEY_<N>) and base URL overrides (<P>_BASE_URL) are read;
	// nil means os.Environ() at the time of the run.
	Environ []string
	// Personas returns the bootstrap files of a persona by name; nil, or a
	// persona it does not know, means the built-in default. Files a workspace
	// keeps in .bulkhead/<NAME>.md replace the persona's file of that name.
	// (The board's personas plug in here.)
	Personas func(ctx context.Context, name string) ([]agent.BootstrapFile, error)
	// Embedder gives memory search vectors to every workspace; nil means
	// Embedding decides (tests plug a fixed embedder in here).
	Embedder memory.Embedder
	// Embedding configures the node's embedding provider when Embedder is
	// nil; nil too means keyword-only memory. Each workspace gets its own
	// embedder: its key is the workspace's credential <provider>_api_key
	// when set, else Embedding.APIKey (the host env's); its vectors are
	// cached in the workspace's own database (embedding cache, capped at
	// EmbedCacheEntries).
	Embedding *embed.Config
	// Quotas bound each workspace's runs.
	Quotas Quotas
	// Subagents bound spawn_subagent.
	Subagents agent.SubagentLimits
	// MaxToolOutput caps one tool result (bytes); 0 means the agent default.
	MaxToolOutput int
	// Hooks are passed to every runner (tests and operators' policy).
	Hooks agent.Hooks
}

// Quotas bound what one workspace may start. Zero fields take the defaults.
type Quotas struct {
	MaxConcurrentRuns int // default 4
	RunsPerMinute     int // default 60
	TokensPerDay      int // input+output over all models, UTC day; 0 means no limit
}

func (q Quotas) withDefaults() Quotas {
	if q.MaxConcurrentRuns <= 0 {
		q.MaxConcurrentRuns = 4
	}
	if q.RunsPerMinute <= 0 {
		q.RunsPerMinute = 60
	}
	return q
}

// agentState is the Service's live agent state: runs in progress, per
// workspace cooldowns and key pools, shared memory stores.
type agentState struct {
	mu        gosync.Mutex
	opts      AgentOptions
	optsSet   bool
	guard     *netguard.Guard
	client    *http.Client           // from guard, shared by every run (one connection pool)
	runs      map[string]*liveRun    // by workspace + "/" + run id
	starts    map[string][]time.Time // recent run starts by workspace
	recovered map[string]bool
	cooldowns map[string]*agent.Cooldowns
	pools     map[string]*agent.KeyPool // by workspace/provider/key fingerprint
	mems      map[string]*memEntry
	egressObs func(ws, verdict string, bytes int64)
	wg        gosync.WaitGroup
}

func (a *agentState) init() {
	if a.runs == nil {
		a.runs = map[string]*liveRun{}
		a.starts = map[string][]time.Time{}
		a.recovered = map[string]bool{}
		a.cooldowns = map[string]*agent.Cooldowns{}
		a.pools = map[string]*agent.KeyPool{}
		a.mems = map[string]*memEntry{}
	}
}

// SetAgentOptions replaces the agent options for runs started afterwards.
func (s *Service) SetAgentOptions(o AgentOptions) { s.setAgentOptions(o, true) }

// SetAgentOptionsIfUnset sets o unless SetAgentOptions was called before,
// so a component that needs some options (the heartbeat's ticket runner)
// never replaces the server's.
func (s *Service) SetAgentOptionsIfUnset(o AgentOptions) { s.setAgentOptions(o, false) }

func (s *Service) setAgentOptions(o AgentOptions, replace bool) {
	s.ag.mu.Lock()
	defer s.ag.mu.Unlock()
	if s.ag.optsSet && !replace {
		return
	}
	s.ag.init()
	s.ag.opts, s.ag.optsSet = o, true
	s.ag.guard, s.ag.client = o.Guard, nil
}

func (a *agentState) options() (AgentOptions, *netguard.Guard, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	if a.guard == nil {
		g, err := netguard.New(netguard.Config{})
		if err != nil {
			return a.opts, nil, err
		}
		a.guard = g
	}
	if a.client == nil {
		a.client = a.guard.Client()
	}
	return a.opts, a.guard, nil
}

// httpClient is the guarded client every provider adapter gets: one
// transport, so model calls reuse connections instead of each run
// opening (and leaving idle) its own.
func (a *agentState) httpClient() *http.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.client
}

func (a *agentState) recoverOnce(ws string, fn func() error) error {
	a.mu.Lock()
	a.init()
	done := a.recovered[ws]
	a.mu.Unlock()
	if done {
		return nil
	}
	if err := fn(); err != nil {
		return err
	}
	a.mu.Lock()
	a.recovered[ws] = true
	a.mu.Unlock()
	return nil
}

func (a *agentState) live(ws, id string) *liveRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs[ws+"/"+id]
}

func (a *agentState) isLive(ws string) func(string) bool {
	return func(id string) bool { return a.live(ws, id) != nil }
}

func (a *agentState) sessionBusy(ws string, ref SessionRef) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := SessionKey(ws, ref)
	for _, l := range a.runs {
		if l.ws == ws && l.rec.Session == key {
			return true
		}
	}
	return false
}

// memEntry is a workspace's memory store shared by its concurrent runs (one
// store per index directory).
type memEntry struct {
	st        *memory.Store
	release   func()
	refs      int
	stopWatch context.CancelFunc
	indexed   chan struct{} // closed when the opener's IndexFiles is done
	watched   chan struct{} // closed when the watch has returned
}

func (s *Service) sharedMemory(ctx context.Context, ws string) (*memory.Store, func(), error) {
	opts, guard, err := s.ag.options()
	if err != nil {
		return nil, nil, err
	}
	s.ag.mu.Lock()
	e := s.ag.mems[ws]
	created := e == nil
	if created {
		if e, err = s.openMemoryLocked(ctx, ws, opts, guard); err != nil {
			s.ag.mu.Unlock()
			return nil, nil, err
		}
		s.ag.mems[ws] = e
	}
	e.refs++
	s.ag.mu.Unlock()
	if created {
		// MEMORY.md and memory/**.md are indexed before the first user
		// searches (outside the lock: it may call the embedder) and then
		// watched while anyone uses this memory, so every search — a run's,
		// the API's, the CLI's — sees what the files say.
		if err := e.st.IndexFiles(ctx, s.FilesDir(ws)); err != nil {
			s.log.Warn("index memory files", "workspace", ws, "err", err)
		}
		close(e.indexed)
	}
	var once gosync.Once
	release := func() {
		once.Do(func() {
			s.ag.mu.Lock()
			defer s.ag.mu.Unlock()
			e.refs--
			if e.refs > 0 {
				return
			}
			// Closed under the lock, so a new opener never meets a store
			// still closing on the same index.
			delete(s.ag.mems, ws)
			e.stopWatch()
			<-e.watched
			if err := e.st.Close(); err != nil {
				s.log.Warn("close memory", "workspace", ws, "err", err)
			}
			e.release()
		})
	}
	// A user that found the store open waits for its opener's first index.
	select {
	case <-e.indexed:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	return e.st, release, nil
}

// openMemoryLocked opens ws's memory store and starts its file watch.
func (s *Service) openMemoryLocked(ctx context.Context, ws string, opts AgentOptions, guard *netguard.Guard) (*memEntry, error) {
	w, err := s.Get(ctx, ws)
	if err != nil {
		return nil, err
	}
	// The store keeps its own reference to the database.
	db, release, err := s.DB(ctx, ws)
	if err != nil {
		return nil, err
	}
	emb, err := s.workspaceEmbedder(ctx, ws, db, opts, guard)
	if err != nil {
		release()
		return nil, fmt.Errorf("embedder of %s: %w", ws, err)
	}
	st, err := memory.Open(ctx, memory.Options{DB: db, IndexDir: filepath.Join(s.IndexDir(ws), "memory"),
		Embedder: emb, Config: w.Config.Memory, Logger: s.log.With("workspace", ws)})
	if err != nil {
		release()
		return nil, fmt.Errorf("open memory of %s: %w", ws, err)
	}
	e := &memEntry{st: st, release: release, indexed: make(chan struct{}), watched: make(chan struct{})}
	var watchCtx context.Context
	watchCtx, e.stopWatch = context.WithCancel(context.Background())
	go func() {
		defer close(e.watched)
		select { // the watch starts after the opener's first index
		case <-e.indexed:
		case <-watchCtx.Done():
			return
		}
		if err := st.Watch(watchCtx, s.FilesDir(ws)); err != nil {
			s.log.Warn("watch memory files", "workspace", ws, "err", err)
		}
	}()
	return e, nil
}

// EmbedCacheEntries caps each workspace's embedding cache.
const EmbedCacheEntries = 100_000

// prefixEmbedCache holds the embedding cache in a workspace's database.
const prefixEmbedCache = "embedcache/"

// workspaceEmbedder returns ws's memory embedder: opts.Embedder if set,
// else one built from opts.Embedding with ws's own key and a cache in ws's
// database, dialing through guard, else nil (keyword-only). It runs under
// s.ag.mu, so it must not call s.ag.options.
func (s *Service) workspaceEmbedder(ctx context.Context, ws string, db *badger.DB, opts AgentOptions, guard *netguard.Guard) (memory.Embedder, error) {
	if opts.Embedder != nil {
		return opts.Embedder, nil
	}
	if opts.Embedding == nil {
		return nil, nil
	}
	cfg := *opts.Embedding
	name := strings.ToLower(cfg.Provider) + "_api_key"
	v, err := s.Credential(ctx, ws, name)
	switch {
	case err == nil:
		cfg.APIKey = embed.NewAPIKey(string(v.Reveal()))
	case !errors.Is(err, ErrCredentialNotFound):
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	cfg.Logger = s.log.With("workspace", ws)
	e, err := embed.New(cfg, guard)
	if err != nil {
		return nil, err
	}
	cache, err := embed.NewBadgerCache(ctx, db, []byte(prefixEmbedCache), EmbedCacheEntries)
	if err != nil {
		return nil, err
	}
	return identifiedEmbedder{embed.WithCache(e, cache)}, nil
}

// identifiedEmbedder names an embedder's vectors "provider/model/dimensions",
// so changing any of them re-embeds instead of mixing vector spaces (a
// different key of the same model keeps the vectors).
type identifiedEmbedder struct{ embed.Embedder }

func (e identifiedEmbedder) Model() string { return embed.Identity(e.Embedder) }

// memoryAdapter is agent.Memory over a memory.Store.
type memoryAdapter struct{ st *memory.Store }

func (m memoryAdapter) Search(ctx context.Context, q string, limit int) ([]agent.MemoryHit, error) {
	res, err := m.st.Search(ctx, memory.SearchOptions{Query: q, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]agent.MemoryHit, len(res.Hits))
	for i, h := range res.Hits {
		src := h.Chunk.Source
		if h.Chunk.Path != "" {
			src += ":" + h.Chunk.Path
		}
		out[i] = agent.MemoryHit{Text: h.Chunk.Text, Source: src, Score: h.Score}
	}
	return out, nil
}

func (m memoryAdapter) Store(ctx context.Context, text string, tags []string) error {
	_, err := m.st.Add(ctx, []memory.Chunk{{Text: text, Tags: tags, Source: memory.SourceManual}})
	return err
}

// providerKeyNoun is how credentials carrying a provider's API key are
// named: "<provider>_api_key" (and "<provider>_api_key_<n>" for a pool).
func providerKeyNames(provider string) []string {
	base := strings.ToLower(provider) + "_api_key"
	names := []string{base}
	for i := 2; i <= 8; i++ {
		names = append(names, fmt.Sprintf("%s_%d", base, i))
	}
	return names
}

// isProviderKeyName reports whether a credential name is a provider key
// (those are for the host's model calls and never go to a skill).
func isProviderKeyName(name string) bool {
	n := strings.ToLower(name)
	for _, p := range Providers {
		if n == p+"_api_key" || strings.HasPrefix(n, p+"_api_key_") {
			return true
		}
	}
	return false
}

// keyless providers are local servers that take no key.
var keyless = map[string]bool{"ollama": true, "vllm": true}

func envValue(environ []string, name string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// chainFor builds the model chain of workspace w: its provider and model
// first (or model, when the caller names one of the configured models), then
// its fallbacks. Providers, base URLs and keys come only from the workspace
// config, the workspace's credentials and the host environment.
func (s *Service) chainFor(ctx context.Context, w *Workspace, model string) (*agent.Chain, error) {
	refs := append([]ModelRef{{Provider: w.Config.Provider, Model: w.Config.Model}}, w.Config.Fallbacks...)
	if model != "" {
		i := slices.IndexFunc(refs, func(r ModelRef) bool { return r.Model == model || r.Provider+"/"+r.Model == model })
		if i < 0 {
			return nil, fmt.Errorf("%w: %q (configured: %s)", ErrModelNotAllowed, model, refList(refs))
		}
		refs = append([]ModelRef{refs[i]}, slices.Delete(slices.Clone(refs), i, i+1)...)
	}
	return s.chainOf(ctx, w.ID, refs)
}

// ModelChain builds a model chain for workspace ws over refs, in order
// (the board uses it for a project's own model). Keys come from the
// workspace's credentials (<provider>_api_key[_n]) first, then the host
// environment; endpoints pass the SSRF guard. It fails with
// ErrNoProviderKey when no ref has a key.
func (s *Service) ModelChain(ctx context.Context, ws string, refs []ModelRef) (*agent.Chain, error) {
	if len(refs) == 0 {
		return nil, errors.New("model chain: no models")
	}
	if _, err := s.Get(ctx, ws); err != nil {
		return nil, err
	}
	return s.chainOf(ctx, ws, refs)
}

func (s *Service) chainOf(ctx context.Context, ws string, refs []ModelRef) (*agent.Chain, error) {
	opts, guard, err := s.ag.options()
	if err != nil {
		return nil, err
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	var cands []agent.Candidate
	keys := map[string]*agent.KeyPool{}
	var missing []string
	for _, ref := range refs {
		base := envValue(environ, agent.EnvPrefix(ref.Provider)+"_BASE_URL")
		endpoint := base
		if endpoint == "" {
			endpoint = agent.Endpoints[ref.Provider].BaseURL
		}
		if err := guard.CheckURL(endpoint); err != nil {
			return nil, fmt.Errorf("provider %s endpoint: %w", ref.Provider, err)
		}
		prov, err := agent.NewProvider(ref.Provider, base, s.ag.httpClient())
		if err != nil {
			return nil, err
		}
		if _, done := keys[ref.Provider]; !done && !keyless[ref.Provider] {
			pool, err := s.keyPool(ctx, ws, ref.Provider, environ)
			if err != nil {
				return nil, err
			}
			if pool == nil {
				missing = append(missing, ref.Provider)
				continue
			}
			keys[ref.Provider] = pool
		}
		if !keyless[ref.Provider] && keys[ref.Provider] == nil {
			continue
		}
		cands = append(cands, agent.Candidate{Provider: prov, Model: ref.Model})
	}
	if len(cands) == 0 {
		names := make([]string, len(missing))
		for i, p := range missing {
			names[i] = fmt.Sprintf("%s (credential %s_api_key or env %s_API_KEY)", p, strings.ToLower(p), agent.EnvPrefix(p))
		}
		return nil, fmt.Errorf("%w: %s", ErrNoProviderKey, strings.Join(names, ", "))
	}
	s.ag.mu.Lock()
	cd := s.ag.cooldowns[ws]
	if cd == nil {
		cd = agent.NewCooldowns()
		s.ag.cooldowns[ws] = cd
	}
	s.ag.mu.Unlock()
	return agent.NewChain(agent.ChainConfig{Candidates: cands, Keys: keys, Cooldowns: cd, Logger: s.log.With("workspace", ws)})
}

func refList(refs []ModelRef) string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Provider + "/" + r.Model
	}
	return strings.Join(out, ", ")
}

// keyPool returns the workspace's key pool for provider: its credentials
// named <provider>_api_key[_n], then the host's env pool. The pool object is
// kept while the key set is unchanged, so rotation and cooldown state last
// across runs. nil means no key.
func (s *Service) keyPool(ctx context.Context, ws, provider string, environ []string) (*agent.KeyPool, error) {
	var secrets []agent.Secret
	for _, name := range providerKeyNames(provider) {
		v, err := s.Credential(ctx, ws, name)
		if errors.Is(err, ErrCredentialNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		secrets = append(secrets, agent.NewSecret(string(v.Reveal())))
	}
	secrets = append(secrets, agent.KeysFromEnv(provider, environ)...)
	if len(secrets) == 0 {
		return nil, nil
	}
	fp := keyFingerprint(secrets)
	id := ws + "/" + provider + "/" + fp
	s.ag.mu.Lock()
	defer s.ag.mu.Unlock()
	if p := s.ag.pools[id]; p != nil {
		return p, nil
	}
	for k := range s.ag.pools {
		if strings.HasPrefix(k, ws+"/"+provider+"/") {
			delete(s.ag.pools, k)
		}
	}
	p := agent.NewKeyPool(provider, secrets...)
	s.ag.pools[id] = p
	return p, nil
}

// defaultBase is the fixed preamble of every system prompt.
const defaultBase = `You are an agent working in one workspace. The bash tool runs commands in the workspace's sandbox, where the workspace files are at /workspace (the working directory). The file tools take paths relative to the workspace root. Use memory_search and memory_store for what should outlast this conversation. Files under .bulkhead/ are read-only configuration.`

// defaultSoul is the persona used when none is configured or known.
const defaultSoul = `Be direct and careful. Do the task, check the result, and say what you did.`

// systemPrompt builds w's system prompt from its persona, the workspace's
// .bulkhead/<NAME>.md overrides and the enabled skills.
func (s *Service) systemPrompt(ctx context.Context, w *Workspace, skills []agent.SkillInfo) (string, error) {
	opts, _, err := s.ag.options()
	if err != nil {
		return "", err
	}
	var files []agent.BootstrapFile
	if opts.Personas != nil {
		files, err = opts.Personas(ctx, w.Config.Persona)
		if err != nil {
			s.log.Warn("persona unavailable; using the default", "workspace", w.ID, "persona", w.Config.Persona, "err", err)
			files = nil
		}
	}
	if files == nil {
		files = []agent.BootstrapFile{{Name: "SOUL.md", Content: defaultSoul}}
	}
	over, err := workspaceOverrides(s.FilesDir(w.ID))
	if err != nil {
		return "", err
	}
	for _, o := range over {
		i := slices.IndexFunc(files, func(f agent.BootstrapFile) bool { return f.Name == o.Name })
		if i >= 0 {
			files[i] = o
		} else {
			files = append(files, o)
		}
	}
	return agent.BuildSystemPrompt(agent.PromptInput{
		Base:      defaultBase,
		Files:     files,
		Workspace: fmt.Sprintf("Workspace %q, persona %q.", w.ID, w.Config.Persona),
		Skills:    skills,
	}, agent.PromptConfig{}), nil
}

// workspaceOverrides reads .bulkhead/<NAME>.md for each bootstrap name,
// inside the files dir only (os.Root: no symlink leaves it).
func workspaceOverrides(filesDir string) ([]agent.BootstrapFile, error) {
	root, err := os.OpenRoot(filesDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open workspace files: %w", err)
	}
	defer root.Close()
	sub, err := root.OpenRoot(".bulkhead")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open .bulkhead: %w", err)
	}
	defer sub.Close()
	return agent.LoadBootstrap(sub.FS())
}

// toolAllowed applies the workspace's tool policy: empty Allow means every
// tool; Deny wins. Entries are names or path.Match patterns ("skill_*").
func toolAllowed(p ToolPolicy, name string) bool {
	match := func(list []string) bool {
		for _, pat := range list {
			if ok, _ := path.Match(pat, name); ok || pat == name {
				return true
			}
		}
		return false
	}
	if match(p.Deny) {
		return false
	}
	return len(p.Allow) == 0 || match(p.Allow)
}

// logger returns the service's logger for a workspace.
func (s *Service) agentLogger(ws string) *slog.Logger {
	return s.log.With("workspace", ws, "subsystem", "agent")
}
