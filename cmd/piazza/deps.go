package main
import (
 _ "github.com/nats-io/nats-server/v2/server"
 _ "github.com/nats-io/nats.go"
 _ "github.com/nats-io/nats.go/jetstream"
 _ "github.com/go-chi/chi/v5"
 _ "github.com/xeipuuv/gojsonschema"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/testutil"
 _ "go.yaml.in/yaml/v3"
)
func main(){}
