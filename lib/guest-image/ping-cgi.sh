#!/bin/sh
# busybox httpd's CGI at /cgi-bin/ping?<IPv4 address>: the guest pings that address (3 packets) and answers
# with ping's output, so a test can see one guest reach another on their network (the guest has no shell
# reachable from outside; its network is an isolated bridge on the compute host).
echo "Content-Type: text/plain"
echo ""
case "$QUERY_STRING" in
  "" | *[!0-9.]*)
    echo "usage: /cgi-bin/ping?<IPv4 address>"
    exit 0
    ;;
esac
ping -c 3 -W 2 "$QUERY_STRING" 2>&1
echo "exit=$?"
