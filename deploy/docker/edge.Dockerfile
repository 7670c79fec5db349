# sipd edge: its static binary and sipctl (the health check; the image has no
# shell) in an empty image, run as an unprivileged user. Built by
# deploy/docker/build-images.sh from binaries it compiles; nothing is pulled.
FROM scratch
COPY edge sipctl /usr/local/bin/
USER 65532:65532
EXPOSE 5060/udp 5060/tcp 9061
ENTRYPOINT ["/usr/local/bin/edge"]
CMD ["-config", "/etc/sipd/edge.yaml"]
