// Package helm holds the Helm chart that runs one tenant on Kubernetes
// (deploy/helm/redoubt) and its tests: the chart rendered by Helm itself,
// every manifest decoded strictly with Kubernetes' own API types, the
// isolation settings asserted on the objects, and the configuration it
// renders loaded by Redoubt's own parser.
package helm
