package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/bulkhead-dev/bulkhead/memory"
)

type (
	// AddMemoryRequest is the body of POST .../memory.
	AddMemoryRequest struct {
		Text   string   `json:"text"`
		Tags   []string `json:"tags,omitempty"`
		Pinned bool     `json:"pinned,omitempty"`
	}
	// AddMemoryResponse names the stored chunk.
	AddMemoryResponse struct {
		ID string `json:"id"`
	}
)

func (s *Server) memoryRoutes() []route {
	return []route{
		{method: "POST", pattern: "/v1/workspaces/{ws}/memory", scope: scopeWorkspace, summary: "Remember a piece of text", req: AddMemoryRequest{}, resp: AddMemoryResponse{}, status: 201, h: s.addMemory},
		{method: "GET", pattern: "/v1/workspaces/{ws}/memory", scope: scopeWorkspace, summary: "List memory chunks, newest first (?source=, ?limit=)", resp: []memory.Chunk{}, h: s.listMemory},
		{method: "GET", pattern: "/v1/workspaces/{ws}/memory/search", scope: scopeWorkspace, summary: "Hybrid search of a workspace's memory (?q=, ?limit=); results explain their score parts", resp: memory.Results{}, h: s.searchMemory},
		{method: "DELETE", pattern: "/v1/workspaces/{ws}/memory/{chunk}", scope: scopeWorkspace, summary: "Forget a memory chunk", status: 204, h: s.deleteMemory},
	}
}

// memErr maps the memory package's input errors to 400/404.
func memErr(err error) error {
	switch {
	case errors.Is(err, memory.ErrEmptyQuery), errors.Is(err, memory.ErrQueryTooLong), errors.Is(err, memory.ErrInvalidText),
		errors.Is(err, memory.ErrInvalidChunk), errors.Is(err, memory.ErrBadEmbedding):
		return apiErr(400, CodeBadRequest, "%s", err.Error())
	case errors.Is(err, memory.ErrNotFound):
		return apiErr(404, CodeNotFound, "%s", err.Error())
	}
	return err
}

func queryLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, apiErr(400, CodeBadRequest, "limit %q: want a number from 1 to 1000", v)
	}
	return n, nil
}

// memoryQuery checks ?limit= and opens the workspace's memory store.
func (s *Server) memoryQuery(r *http.Request) (*memory.Store, int, func(), error) {
	limit, err := queryLimit(r)
	if err != nil {
		return nil, 0, nil, err
	}
	st, release, err := s.svc.Memory(r.Context(), r.PathValue("ws"))
	return st, limit, release, err
}

func (s *Server) addMemory(w http.ResponseWriter, r *http.Request) error {
	var req AddMemoryRequest
	if err := decodeJSON(w, r, s.opts.MaxBody, &req); err != nil {
		return err
	}
	st, release, err := s.svc.Memory(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	defer release()
	ids, err := st.Add(r.Context(), []memory.Chunk{{Text: req.Text, Source: "api", Time: time.Now().UTC(), Tags: req.Tags, Pinned: req.Pinned}})
	if err != nil {
		return memErr(err)
	}
	writeJSON(w, 201, AddMemoryResponse{ID: ids[0]})
	return nil
}

func (s *Server) listMemory(w http.ResponseWriter, r *http.Request) error {
	st, limit, release, err := s.memoryQuery(r)
	if err != nil {
		return err
	}
	defer release()
	list, err := st.List(r.Context(), memory.ListOptions{Source: r.URL.Query().Get("source"), Limit: limit})
	if err != nil {
		return memErr(err)
	}
	if list == nil {
		list = []memory.Chunk{}
	}
	writeJSON(w, 200, list)
	return nil
}

func (s *Server) searchMemory(w http.ResponseWriter, r *http.Request) error {
	st, limit, release, err := s.memoryQuery(r)
	if err != nil {
		return err
	}
	defer release()
	res, err := st.Search(r.Context(), memory.SearchOptions{Query: r.URL.Query().Get("q"), Limit: limit})
	if err != nil {
		return memErr(err)
	}
	writeJSON(w, 200, res)
	return nil
}

func (s *Server) deleteMemory(w http.ResponseWriter, r *http.Request) error {
	st, release, err := s.svc.Memory(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	defer release()
	id := r.PathValue("chunk")
	if _, err := st.Get(r.Context(), id); err != nil {
		return memErr(err)
	}
	if err := st.Delete(r.Context(), id); err != nil {
		return memErr(err)
	}
	w.WriteHeader(204)
	return nil
}
