# Local stand-in for the official NATS image, for machines that cannot pull
# it: nats-server built from its Go module, and busybox (Debian's
# busybox-static) for wget in the health check, as in nats:*-alpine.
FROM scratch
COPY nats-server /usr/local/bin/nats-server
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/bin
EXPOSE 4222 6222 7222 7422 8222
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["-m", "8222"]
