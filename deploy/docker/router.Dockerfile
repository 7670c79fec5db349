# sipd router: its static binary and sipctl (the health check; the image has no
# shell) in an empty image, run as an unprivileged user. Built by
# deploy/docker/build-images.sh from binaries it compiles; nothing is pulled.
FROM scratch
COPY router sipctl /usr/local/bin/
USER 65532:65532
EXPOSE 7002 9063
ENTRYPOINT ["/usr/local/bin/router"]
CMD ["-config", "/etc/sipd/router.yaml"]
