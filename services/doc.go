// Package services is sipd's composition root: it loads configuration and
// wires the domain modules (edge, registrar, router) into processes.
package services
