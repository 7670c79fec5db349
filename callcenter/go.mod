module github.com/sipd/sipd/callcenter

go 1.26.0

replace github.com/sipd/sipd/proto => ../proto

replace github.com/sipd/sipd/allocator => ../allocator
