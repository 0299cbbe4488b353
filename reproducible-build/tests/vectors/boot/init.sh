#!/bin/sh
echo "veil test init"
