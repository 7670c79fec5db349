// Package callcenter is the inbound call center: queues, agents, skills and
// a B2BUA that bridges callers to agents.
package callcenter
