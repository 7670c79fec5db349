module github.com/sipd/sipd/bench

go 1.26.0
