# sipp (Debian's sip-tester) with its shared libraries, for the compose
# end-to-end test: it runs the UAs inside the compose network, where every
# edge's advertised address is reachable. busybox gives it a shell.
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/usr/bin:/bin TERM=dumb
ENTRYPOINT ["/usr/bin/sipp"]
