// Package deploy holds what a city needs to run Piazza in production, and the
// tests that check it without Docker or a cluster:
//
//	Dockerfile            the container image (static binary, distroless, non-root)
//	docker-compose.yml    3-node NATS JetStream cluster, two Piazza replicas, HAProxy, Prometheus, Grafana
//	kubernetes/           Deployment, Service, ConfigMap, PodDisruptionBudget, values for the NATS Helm chart
//	prometheus/           scrape config and alert rules
//	grafana/              dashboard and provisioning
//	probe/                the image's health check command
//
// The package has no code: its tests validate the compose file and the
// manifests against their JSON schemas (testdata/schemas, see SOURCES.md),
// parse the alert rules as Prometheus does, check that every PromQL
// expression of the dashboard and the rules names only metrics that Piazza
// exports (node.MetricNames), and run the real piazza with --check-config on
// the settings that compose and Kubernetes give it. Each check has bad
// fixtures in testdata that it must refuse.
package deploy
