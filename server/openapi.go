package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

var pathParamRE = regexp.MustCompile(`\{([a-z]+)\}`)

// OpenAPI returns the OpenAPI 3 document for the route table.
func (s *Server) OpenAPI() map[string]any {
	schemas := map[string]any{}
	paths := map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt),
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.scope == scopePublic {
			op["security"] = []any{}
		}
		if rt.req != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.req), schemas)}}}
		}
		status := rt.status
		if status == 0 {
			status = 200
		}
		ok := map[string]any{"description": http.StatusText(status)}
		if rt.resp != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.resp), schemas)}}
		}
		op["responses"] = map[string]any{
			itoa(status): ok,
			"default":    map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
		}
		item, _ := paths[rt.pattern].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.pattern] = item
		}
		item[strings.ToLower(rt.method)] = op
	}
	schemas["Error"] = map[string]any{"type": "object", "properties": map[string]any{"error": schemaOf(reflect.TypeOf(APIError{}), schemas)}}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "bulkhead API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func operationID(rt route) string {
	p := strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_", "-", "_").Replace(strings.Trim(rt.pattern, "/"))
	return strings.ToLower(rt.method) + "_" + p
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	byteSizeType = reflect.TypeOf(workspace.ByteSize(0))
	durationType = reflect.TypeOf(workspace.Duration(0))
	rawType      = reflect.TypeOf(json.RawMessage{})
)

// schemaOf builds a JSON schema for t; named structs go into schemas.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case byteSizeType:
		return map[string]any{"oneOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "string", "example": "512MiB"}}}
	case durationType:
		return map[string]any{"type": "string", "example": "30s"}
	case rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), schemas)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Struct:
		name := t.Name()
		if name != "" {
			if _, done := schemas[name]; done {
				return map[string]any{"$ref": "#/components/schemas/" + name}
			}
			schemas[name] = map[string]any{} // placeholder against recursion
		}
		props := map[string]any{}
		addFields(t, props, schemas)
		sch := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if name == "" {
			return sch
		}
		schemas[name] = sch
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func addFields(t reflect.Type, props map[string]any, schemas map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			addFields(f.Type, props, schemas)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type, schemas)
	}
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, 200, s.OpenAPI())
	return nil
}
