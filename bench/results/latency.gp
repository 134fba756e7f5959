set terminal pngcairo size 1100,520 font 'sans,10'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by -30
set key top right
set yrange [0:*]
set output 'latency.png'
set multiplot layout 1,2 title 'HTTP latency (wrk --latency, ms; median of rounds, bars: min-max)'
set title 'keep-alive'
plot 'http.dat' using 8:9:10:xtic(1) title 'p50' lc rgb '#3366cc', '' using 11:12:13 title 'p99' lc rgb '#ff9900'
set title 'Connection: close'
plot 'http.dat' using 14:15:16:xtic(1) title 'p50' lc rgb '#3366cc', '' using 17:18:19 title 'p99' lc rgb '#ff9900'
unset multiplot
