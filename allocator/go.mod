module github.com/sipd/sipd/allocator

go 1.26.0

replace github.com/sipd/sipd/proto => ../proto

