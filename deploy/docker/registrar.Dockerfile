# sipd registrar: its static binary and sipctl (the health check; the image has no
# shell) in an empty image, run as an unprivileged user. Built by
# deploy/docker/build-images.sh from binaries it compiles; nothing is pulled.
FROM scratch
COPY registrar sipctl /usr/local/bin/
USER 65532:65532
EXPOSE 7001 9062
ENTRYPOINT ["/usr/local/bin/registrar"]
CMD ["-config", "/etc/sipd/registrar.yaml"]
